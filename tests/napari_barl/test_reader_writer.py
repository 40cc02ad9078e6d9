"""Reader / writer: exact geometry round trip, checked with an independent reader."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from barl_core.errors import BarlError
from barl_core.io.volume import Volume, write_labels, write_volume
from napari_barl._reader import napari_get_reader
from napari_barl._writer import write_labels_layer

REPO = Path(__file__).resolve().parents[2]
OBLIQUE = (0.8, -0.6, 0.0, 0.6, 0.8, 0.0, 0.0, 0.0, 1.0)


def _volume(direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)) -> Volume:
    rng = np.random.default_rng(1)
    arr = rng.normal(100, 20, size=(6, 9, 7)).astype(np.float32)
    return Volume(
        arr,
        spacing=(2.5, 0.4, 0.3),
        origin=(-12.0, 4.5, 30.0),
        direction=tuple(float(d) for d in direction),
    )


@pytest.mark.parametrize("direction", [(1, 0, 0, 0, 1, 0, 0, 0, 1), OBLIQUE])
@pytest.mark.parametrize("ext", [".nii.gz", ".nrrd"])
def test_read_then_write_keeps_geometry(tmp_path, direction, ext):
    src = _volume(direction)
    src_path = write_volume(src, tmp_path / f"scan{ext}")
    reader = napari_get_reader(str(src_path))
    assert reader is not None
    [(data, kwargs, kind)] = reader(str(src_path))
    assert kind == "image" and data.shape == src.shape
    if direction == OBLIQUE:
        np.testing.assert_allclose(kwargs["affine"], src.affine_zyx(), atol=1e-5)
    else:
        np.testing.assert_allclose(kwargs["scale"], src.spacing, rtol=1e-6)
        np.testing.assert_allclose(kwargs["translate"], src.origin[::-1], rtol=1e-6)
    assert kwargs["metadata"]["barl_source"] == str(src_path)

    labels = (data > 100).astype(np.uint8)
    out = tmp_path / "mask.nii.gz"
    [written] = write_labels_layer(str(out), labels, {"metadata": kwargs["metadata"]})
    ours, theirs = nib.load(written), nib.load(write_volume(src, tmp_path / "ref.nii.gz"))
    np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-5)
    assert np.issubdtype(ours.get_data_dtype(), np.unsignedinteger)
    # nibabel arrays are (x, y, z)
    np.testing.assert_array_equal(np.asarray(ours.dataobj).transpose(2, 1, 0), labels)


def test_labels_open_as_labels_layer(tmp_path):
    src = _volume()
    lab = np.zeros(src.shape, np.uint8)
    lab[2, 3:5, 3:5] = 2
    (tmp_path / "labelsTr").mkdir()
    p1 = write_labels(lab, src, tmp_path / "labelsTr" / "case.nii.gz")
    p2 = write_labels(lab, src, tmp_path / "case_seg.nrrd")
    p3 = write_labels(lab, src, tmp_path / "case.mha")  # no hint but few integer values
    for p in (p1, p2, p3):
        [(data, kwargs, kind)] = napari_get_reader(str(p))(str(p))
        assert kind == "labels" and data.max() == 2


def test_writer_fallback_without_metadata(tmp_path):
    lab = np.ones((3, 4, 5), np.uint8)
    [written] = write_labels_layer(
        str(tmp_path / "m.nii"), lab, {"scale": (2.0, 1.0, 0.5), "translate": (3.0, 2.0, 1.0)}
    )
    img = nib.load(written)
    np.testing.assert_allclose(img.header.get_zooms(), (0.5, 1.0, 2.0))


def test_unsupported_and_corrupt(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    assert napari_get_reader(str(tmp_path / "notes.txt")) is None
    assert napari_get_reader(str(tmp_path)) is None  # a folder without DICOM
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    reader = napari_get_reader(str(bad))
    with pytest.raises(BarlError):
        reader(str(bad))


def test_manifest_validates():
    npe2 = Path(sys.executable).with_name("npe2")
    cmd = [str(npe2)] if npe2.exists() else [sys.executable, "-m", "npe2"]
    res = subprocess.run(
        cmd + ["validate", str(REPO / "napari_barl" / "napari.yaml")],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    from npe2 import PluginManifest

    mf = PluginManifest.from_file(REPO / "napari_barl" / "napari.yaml")
    assert mf.name == "napari-barl" and mf.display_name == "BARL segmentation"
    assert {w.layer_types[0] for w in mf.contributions.writers} == {"labels"}
    assert mf.contributions.sample_data[0].display_name == "Dental CBCT phantom"


def _write_dicom_series(folder: Path, arr: np.ndarray, spacing=(2.0, 0.5, 0.5)) -> None:
    import SimpleITK as sitk

    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series = "1.2.826.0.1.3680043.2.1125.1.42"
    for k in range(arr.shape[0]):
        sl = sitk.GetImageFromArray(arr[k])
        sl.SetSpacing((spacing[2], spacing[1]))
        for tag, value in {
            "0020|000e": series,
            "0020|0013": str(k + 1),
            "0020|0032": f"0\\0\\{k * spacing[0]}",
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0018|0050": str(spacing[0]),
            "0008|0060": "CT",
        }.items():
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(sl)


def test_dicom_folder_opens_as_image(tmp_path):
    arr = (np.arange(4 * 6 * 5).reshape(4, 6, 5) * 10).astype(np.int16)
    _write_dicom_series(tmp_path / "dicom", arr)
    reader = napari_get_reader(str(tmp_path / "dicom"))
    assert reader is not None
    [(data, kwargs, kind)] = reader(str(tmp_path / "dicom"))
    assert kind == "image" and data.shape == (4, 6, 5)
    np.testing.assert_allclose(kwargs["scale"], (2.0, 0.5, 0.5), rtol=1e-5)
