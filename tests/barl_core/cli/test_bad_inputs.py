"""Every bad input fails with one clear BarlError, writes nothing, and the CLI exits 2."""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest
import SimpleITK as sitk

from barl_core.cli.main import main
from barl_core.data.case_names import validate_case_name
from barl_core.data.dataset import load_dataset
from barl_core.errors import (
    BarlError,
    EmptyDatasetError,
    GeometryMismatchError,
    InputFileError,
    InvalidVolumeError,
    LabelValueError,
)
from barl_core.io.volume import Volume, read_volume, write_labels, write_volume

SHAPE = (6, 7, 8)


def _image(rng) -> Volume:
    return Volume(rng.normal(size=SHAPE).astype(np.float32), spacing=(2.0, 1.0, 1.0))


def _snapshot(folder) -> set:
    return {p.relative_to(folder) for p in folder.rglob("*")}


def _cli_fails(capsys, argv) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2
    err = captured.err.strip()
    assert err.startswith("barl: error:")
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in captured.err + captured.out
    return err


# ---------------------------------------------------------------- unreadable files
def _truncated(tmp_path, rng):
    p = write_volume(_image(rng), tmp_path / "t.nii.gz")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


def _random_bytes(tmp_path, rng):
    p = tmp_path / "r.nii.gz"
    p.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return p


def _random_gzip(tmp_path, rng):
    p = tmp_path / "g.nii.gz"
    p.write_bytes(gzip.compress(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()))
    return p


def _absurd_header(tmp_path, rng):
    p = write_volume(_image(rng), tmp_path / "a.nii", compress=False)
    raw = bytearray(p.read_bytes())
    raw[40:48] = struct.pack("<4h", 3, 30000, 30000, 30000)  # dim[0..3]
    p.write_bytes(bytes(raw))
    return p


def _missing(tmp_path, rng):
    return tmp_path / "nope.nii.gz"


def _folder_named_like_a_file(tmp_path, rng):
    p = tmp_path / "dir.nii.gz"
    p.mkdir()
    return p


def _wrong_extension(tmp_path, rng):
    p = tmp_path / "vol.png"
    p.write_bytes(b"\x89PNG")
    return p


def _too_long_name(tmp_path, rng):
    return tmp_path / ("é" * 200 + ".nii.gz")


@pytest.mark.parametrize(
    "make",
    [
        _missing,
        _truncated,
        _random_bytes,
        _random_gzip,
        _absurd_header,
        _folder_named_like_a_file,
        _wrong_extension,
        _too_long_name,
    ],
)
def test_unreadable_inputs(tmp_path, rng, capsys, make):
    path = make(tmp_path, rng)
    before = _snapshot(tmp_path)
    with pytest.raises(InputFileError):
        read_volume(path)
    out = tmp_path / "info.json"
    _cli_fails(capsys, ["info", str(path), "--json", str(out)])
    _cli_fails(capsys, ["evaluate", "--pred", str(path), "--gt", str(path), "--json", str(out)])
    assert _snapshot(tmp_path) == before  # nothing written, no temporary left


def test_unreadable_permissions(tmp_path, rng, capsys):
    p = write_volume(_image(rng), tmp_path / "locked.nii.gz")
    os.chmod(p, 0)
    try:
        if os.access(p, os.R_OK):
            pytest.skip("running as root: permissions are not enforced")
        with pytest.raises(InputFileError):
            read_volume(p)
        _cli_fails(capsys, ["info", str(p)])
    finally:
        os.chmod(p, 0o600)


# ---------------------------------------------------------------- wrong content
def test_nan_and_inf(tmp_path, rng, capsys):
    for bad in (np.nan, np.inf):
        vol = _image(rng)
        vol.array[1, 2, 3] = bad
        p = write_volume(vol, tmp_path / f"imagesTr/bad_{bad}.nii.gz")
        with pytest.raises(InvalidVolumeError, match="NaN/Inf"):
            read_volume(p)
        _cli_fails(capsys, ["info", str(p)])
    with pytest.raises(InvalidVolumeError):
        load_dataset(tmp_path)


@pytest.mark.parametrize("ndim", [2, 4])
def test_not_3d(tmp_path, rng, capsys, ndim):
    if ndim == 2:
        img = sitk.GetImageFromArray(rng.normal(size=(7, 8)).astype(np.float32))
    else:
        img = sitk.JoinSeries(
            [sitk.GetImageFromArray(rng.normal(size=SHAPE).astype(np.float32))] * 2
        )
    p = tmp_path / "imagesTr" / f"d{ndim}.nii.gz"
    p.parent.mkdir()
    sitk.WriteImage(img, str(p))
    with pytest.raises(InvalidVolumeError, match="3D"):
        read_volume(p)
    with pytest.raises(InvalidVolumeError):
        load_dataset(tmp_path)
    _cli_fails(capsys, ["info", str(p)])
    with pytest.raises(InvalidVolumeError):
        write_volume(Volume(np.zeros((3, 3))), tmp_path / "x.nii.gz")  # type: ignore[arg-type]
    assert not (tmp_path / "x.nii.gz").exists()


# ---------------------------------------------------------------- datasets
def _dataset(tmp_path, rng, label: np.ndarray, label_geometry: dict | None = None):
    img = _image(rng)
    write_volume(img, tmp_path / "imagesTr" / "case_0000.nii.gz")
    ref = Volume(img.array, **(label_geometry or {"spacing": img.spacing}))
    write_labels(label, ref, tmp_path / "labelsTr" / "case.nii.gz")
    return tmp_path


@pytest.mark.parametrize(
    "geometry",
    [
        {"spacing": (2.0, 1.0, 1.5)},
        {"spacing": (2.0, 1.0, 1.0), "origin": (0.0, 5.0, 0.0)},
        {"spacing": (2.0, 1.0, 1.0), "direction": (0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0)},
    ],
)
def test_label_grid_mismatch(tmp_path, rng, capsys, geometry):
    root = _dataset(tmp_path, rng, np.zeros(SHAPE, np.uint8), geometry)
    before = _snapshot(tmp_path)
    with pytest.raises(GeometryMismatchError, match="does not match its image grid"):
        load_dataset(root)
    _cli_fails(capsys, ["info", str(root)])
    assert _snapshot(tmp_path) == before


def test_label_shape_mismatch(tmp_path, rng):
    write_volume(_image(rng), tmp_path / "imagesTr" / "case.nii.gz")
    write_volume(
        Volume(np.zeros((6, 7, 9), np.uint8), spacing=(2.0, 1.0, 1.0)),
        tmp_path / "labelsTr" / "case.nii.gz",
    )
    with pytest.raises(GeometryMismatchError, match="shape"):
        load_dataset(tmp_path)


def test_label_values_outside_classes(tmp_path, rng, capsys):
    lab = np.full(SHAPE, 255, np.uint8)
    lab[2] = 0
    lab[2, 1, 1] = 5
    root = _dataset(tmp_path, rng, lab)
    assert load_dataset(root)[0].status.kind == "partial"  # 5 < 255: a class when K is unknown
    with pytest.raises(LabelValueError, match=r"\[5\]"):
        load_dataset(root, num_classes=3)
    _cli_fails(capsys, ["info", str(root), "--num-classes", "3"])
    with pytest.raises(LabelValueError):
        load_dataset(root, num_classes=3, ignore_index=254)  # 255 is then not the ignore value


def test_empty_dataset(tmp_path, capsys):
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "imagesTr" / "readme.txt").write_text("no volumes here")
    with pytest.raises(EmptyDatasetError):
        load_dataset(tmp_path)
    _cli_fails(capsys, ["info", str(tmp_path)])
    with pytest.raises(InputFileError):
        load_dataset(tmp_path / "missing")
    with pytest.raises(InputFileError):
        load_dataset(tmp_path, tmp_path / "no_labels_here")


@pytest.mark.parametrize(
    "name", ["..", ".", "", "../evil", "a/b", "..\\..\\evil", "x\x00y", "tab\there"]
)
def test_path_traversal_names_are_refused(name):
    with pytest.raises(InputFileError):
        validate_case_name(name)


def test_path_traversal_file_in_dataset(tmp_path, rng, capsys):
    write_volume(_image(rng), tmp_path / "imagesTr" / "..\\..\\evil.nii.gz")
    with pytest.raises(InputFileError, match="invalid case name"):
        load_dataset(tmp_path)
    _cli_fails(capsys, ["info", str(tmp_path)])


def test_non_ascii_and_long_paths_work(tmp_path, rng, capsys):
    deep = tmp_path / ("données_é_ß_中文_" * 3) / ("x" * 60)
    name = "ça_" + "y" * 150
    img = _image(rng)
    write_volume(img, deep / "imagesTr" / f"{name}.nii.gz")
    lab = np.zeros(SHAPE, np.uint8)
    write_labels(lab, img, deep / "labelsTr" / f"{name}.nii.gz")
    cases = load_dataset(deep)
    assert cases[0].name == name and cases[0].status.kind == "labelled"
    assert main(["info", str(deep)]) == 0
    assert name in capsys.readouterr().out


def test_cli_evaluate_mismatched_grid_writes_no_json(tmp_path, rng, capsys):
    a = _image(rng)
    write_labels(np.zeros(SHAPE, np.uint8), a, tmp_path / "gt" / "c.nii.gz")
    write_labels(
        np.zeros((6, 7, 9), np.uint8), Volume(np.zeros((6, 7, 9))), tmp_path / "pred" / "c.nii.gz"
    )
    out = tmp_path / "res.json"
    evaluate = ["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt")]
    err = _cli_fails(capsys, [*evaluate, "--json", str(out)])
    assert "does not match" in err
    assert not out.exists()
    _cli_fails(capsys, [*evaluate, "--classes", "x"])


def test_every_error_is_a_barl_error():
    for cls in (
        InputFileError,
        GeometryMismatchError,
        LabelValueError,
        InvalidVolumeError,
        EmptyDatasetError,
    ):
        assert issubclass(cls, BarlError)
