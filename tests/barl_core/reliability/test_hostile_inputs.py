"""Hostile and careless inputs, generated on the fly: each ends in one clear line and exit 2
(or a correct result), never a traceback, and no file that existed before is changed.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from barl_core.errors import BarlError, LabelValueError, LockedError
from barl_core.io.volume import Volume, read_volume, write_labels, write_volume
from barl_core.training.checkpoint import load_checkpoint, save_checkpoint
from barl_core.workspace.layout import Workspace


def _image(path: Path, shape=(16, 24, 24), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    return write_volume(Volume(rng.normal(size=shape).astype(np.float32), spacing=(2.0, 1.0, 1.0)), path)


def _predict(barl, model, image, out, *extra):
    return barl("predict", "--model", model, "--image", image, "--out", out, "--device", "cpu", "--quiet", *extra)


# ------------------------------------------------------------------ outputs that are inputs
def test_predict_out_is_the_input_file(rel, barl, tiny_run, tmp_path):
    src = _image(tmp_path / "case.nii.gz")
    before = rel.snapshot(tmp_path, tiny_run["model"])
    rel.expect_clear_error(_predict(barl, tiny_run["model"], src, src), "overwrite the input")
    rel.assert_kept(before)


def test_predict_disagreement_is_the_input_file(rel, barl, tiny_run, tmp_path):
    src = _image(tmp_path / "case.nii.gz")
    before = rel.snapshot(tmp_path)
    res = _predict(barl, tiny_run["model"], src, tmp_path / "pred.nii.gz", "--disagreement", src)
    rel.expect_clear_error(res, "overwrite the input")
    rel.assert_kept(before)
    assert not (tmp_path / "pred.nii.gz").exists()  # refused before any work


def test_predict_into_its_own_input_folder(rel, barl, tiny_run, tmp_path):
    folder = tmp_path / "images"
    _image(folder / "a.nii.gz")
    _image(folder / "b.nii.gz", seed=1)
    before = rel.snapshot(folder)
    rel.expect_clear_error(_predict(barl, tiny_run["model"], folder, folder), "input folder")
    rel.assert_kept(before)


def test_two_inputs_one_output_name(rel, barl, tiny_run, tmp_path):
    folder = tmp_path / "images"
    _image(folder / "a.nii.gz")
    _image(folder / "a.nrrd", seed=1)
    out = tmp_path / "preds"
    before = rel.snapshot(folder)
    rel.expect_clear_error(_predict(barl, tiny_run["model"], folder, out), "share this name")
    rel.assert_kept(before)
    assert not any(out.glob("*.nii.gz"))


def test_labels_and_disagreement_to_one_file(rel, barl, tiny_run, tmp_path):
    src = _image(tmp_path / "case.nii.gz")
    out = tmp_path / "same.nii.gz"
    out.write_bytes(b"an earlier result")
    before = rel.snapshot(tmp_path)
    rel.expect_clear_error(_predict(barl, tiny_run["model"], src, out, "--disagreement", out), "share this name")
    rel.assert_kept(before)


def test_output_is_the_model(rel, barl, tiny_run, tmp_path):
    src = _image(tmp_path / "case.nii.gz")
    model = tmp_path / "model.nii.gz"  # a model file with a volume's name: --out would replace it
    shutil.copy(tiny_run["model"], model)
    before = rel.snapshot(tmp_path)
    rel.expect_clear_error(_predict(barl, model, src, model), "overwrite the input")
    rel.assert_kept(before)


def test_output_through_a_link_to_the_input(rel, barl, tiny_run, tmp_path):
    """Extra case: the output is a symbolic (or hard) link to the input file."""
    src = _image(tmp_path / "case.nii.gz")
    os.symlink(src, tmp_path / "soft.nii.gz")
    os.link(src, tmp_path / "hard.nii.gz")
    before = rel.snapshot(src)
    for out in ("soft.nii.gz", "hard.nii.gz"):
        rel.expect_clear_error(_predict(barl, tiny_run["model"], src, tmp_path / out), "overwrite the input")
    rel.assert_kept(before)


@pytest.mark.parametrize("command", ["info", "evaluate"])
def test_json_onto_an_input(rel, barl, tmp_path, command):
    gt = tmp_path / "gt.nii.gz"
    write_labels(np.zeros((4, 5, 6), np.uint8), Volume(np.zeros((4, 5, 6), np.float32)), gt)
    before = rel.snapshot(tmp_path)
    argv = ["info", gt, "--json", gt] if command == "info" else ["evaluate", "--pred", gt, "--gt", gt, "--json", gt]
    rel.expect_clear_error(barl(*argv), "overwrite the input")
    rel.assert_kept(before)


def test_json_into_a_missing_folder_under_a_file_and_onto_a_folder(rel, barl, tmp_path):
    src = _image(tmp_path / "case.nii.gz", shape=(4, 5, 6))
    before = rel.snapshot(tmp_path)
    rel.expect_clear_error(barl("info", src, "--json", src / "info.json"))
    (tmp_path / "dir.json").mkdir()
    rel.expect_clear_error(barl("info", src, "--json", tmp_path / "dir.json"), "folder")
    rel.assert_kept(before)


def test_existing_json_is_replaced_with_the_new_result(rel, barl, tmp_path):
    src = _image(tmp_path / "case.nii.gz", shape=(4, 5, 6))
    out = tmp_path / "info.json"
    out.write_text("old")
    rel.expect_success(barl("info", src, "--json", out))
    assert json.loads(out.read_text())["shape"] == [4, 5, 6]


# ------------------------------------------------------------------ bad images
def test_header_declaring_2000_cubed_voxels_fails_fast_in_bounded_memory(rel, barl, tmp_path):
    small = write_volume(Volume(np.zeros((2, 2, 2), np.uint16)), tmp_path / "small.nii", compress=False)
    header = bytearray(small.read_bytes()[:352])
    header[40:48] = struct.pack("<4h", 3, 2000, 2000, 2000)
    hostile = tmp_path / "hostile.nii.gz"
    hostile.write_bytes(gzip.compress(bytes(header) + np.random.default_rng(0).bytes(50_000)))
    assert hostile.stat().st_size < 60_000
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    rel.expect_clear_error(barl("info", hostile), "declares")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 200 * 1024  # no 16 GB buffer


def test_uncompressed_header_larger_than_the_file(rel, barl, tmp_path):
    """Extra case: a plain .nii whose header promises 64x the data it holds."""
    p = write_volume(Volume(np.zeros((4, 4, 4), np.float32)), tmp_path / "short.nii", compress=False)
    raw = bytearray(p.read_bytes())
    raw[40:48] = struct.pack("<4h", 3, 16, 16, 16)
    p.write_bytes(bytes(raw))
    rel.expect_clear_error(barl("info", p), "declares")


def test_complex_valued_image(rel, barl, tmp_path):
    arr = (np.ones((3, 4, 5)) + 1j * np.ones((3, 4, 5))).astype(np.complex64)
    path = tmp_path / "complex.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(path))
    rel.expect_clear_error(barl("info", path), "complex")


def test_one_voxel_image_in_predict(rel, barl, tiny_run, tmp_path):
    src = write_volume(Volume(np.ones((1, 1, 1), np.float32)), tmp_path / "one.nii.gz")
    out = tmp_path / "one_seg.nii.gz"
    res = _predict(barl, tiny_run["model"], src, out)
    if res.code == 0:  # a correct result: one label on the input's one-voxel grid
        rel.expect_success(res)
        assert read_volume(out).shape == (1, 1, 1)
    else:
        rel.expect_clear_error(res)


def test_symlink_loop_in_a_dataset(rel, barl, tmp_path):
    images = tmp_path / "ds" / "imagesTr"
    _image(images / "a.nii.gz", shape=(4, 5, 6))
    os.symlink("loop.nii.gz", images / "loop.nii.gz")
    res = barl("info", tmp_path / "ds")
    if res.code == 0:
        rel.expect_success(res)
    else:
        rel.expect_clear_error(res, "loop.nii.gz")
    rel.expect_clear_error(barl("info", images / "loop.nii.gz"))


def test_300_character_path_components(rel, barl, tiny_run, tmp_path):
    long_name = "x" * 300
    rel.expect_clear_error(barl("info", tmp_path / f"{long_name}.nii.gz"))
    src = _image(tmp_path / "case.nii.gz", shape=(4, 5, 6))
    rel.expect_clear_error(barl("info", src, "--json", tmp_path / long_name / "i.json"))
    rel.expect_clear_error(_predict(barl, tiny_run["model"], src, tmp_path / f"{long_name}.nii.gz"))


def _dicom_series(folder: Path, uid: str, n: int, first: int) -> None:
    for k in range(n):
        sl = sitk.GetImageFromArray(np.full((1, 6, 7), k, np.int16))
        sl.SetSpacing((1.0, 1.0, 2.0))
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        tags = {
            "0020|000e": uid, "0020|000d": "1.2.3", "0008|0060": "CT", "0020|0013": str(k + 1),
            "0020|0032": f"0\\0\\{2.0 * k}", "0020|0037": "1\\0\\0\\0\\1\\0", "0008|0018": f"{uid}.{k + 1}",
        }
        for tag, value in tags.items():
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"s{first + k:03d}.dcm"))
        writer.Execute(sl)


def test_dicom_folder_with_mixed_series(rel, barl, tmp_path):
    folder = tmp_path / "dicom"
    folder.mkdir()
    _dicom_series(folder, "1.2.826.0.1.1", 4, 0)
    _dicom_series(folder, "1.2.826.0.1.2", 5, 10)
    rel.expect_clear_error(barl("info", folder), "--series-id")
    rel.expect_clear_error(barl("info", folder, "--series-id", "9.9"), "no DICOM series")
    res = barl("info", folder, "--series-id", "1.2.826.0.1.2", "--json", tmp_path / "i.json")
    rel.expect_success(res)
    assert json.loads((tmp_path / "i.json").read_text())["shape"] == [5, 6, 7]


# ------------------------------------------------------------------ bad configs and runs
@pytest.mark.parametrize(
    "bad", [{"iterations": "abc"}, {"patch_size": 5}, {"iterations": 1e999}, {"iterations": 10**9},
            {"lr": None}, ["not", "an", "object"]],
    ids=["iterations-abc", "patch-5", "iterations-1e999", "iterations-1e9", "lr-null", "a-list"],
)
def test_bad_config_values(rel, barl, tiny_run, tmp_path, bad):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(bad).replace("Infinity", "1e999"))
    out = tmp_path / "run"
    rel.expect_clear_error(barl("train", "--images", tiny_run["dataset"], "--out", out, "--config", cfg, "--quiet"),
                       "cfg.json")
    assert not (out / "model.pt").exists()


def test_train_into_an_existing_run_needs_resume_or_overwrite(rel, barl, tiny_run):
    before = rel.snapshot(tiny_run["run"])
    base = ["train", "--images", tiny_run["dataset"], "--out", tiny_run["run"], "--quiet", "--device", "cpu"]
    rel.expect_clear_error(barl(*base), "--resume")
    rel.expect_clear_error(barl(*base, "--resume", "--overwrite"), "not both")
    rel.expect_clear_error(barl(*base, "--resume", "--iterations", "1"), "already at iteration 2")
    rel.expect_clear_error(barl(*base, "--overwrite", "--init-from", tiny_run["model"]), "--overwrite would delete")
    rel.assert_kept(before)


def test_train_out_is_a_file(rel, barl, tiny_run, tmp_path):
    out = tmp_path / "run"
    out.write_text("not a folder")
    before = rel.snapshot(out)
    rel.expect_clear_error(barl("train", "--images", tiny_run["dataset"], "--out", out, "--quiet"), "not a folder")
    rel.assert_kept(before)


def test_stray_label_value_254_without_classes(rel, barl, tiny_run, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(tiny_run["dataset"], ds)
    (ds / "dataset.json").unlink()  # no class names anywhere
    lab_path = next(p for p in sorted((ds / "labelsTr").iterdir()))
    lab = read_volume(lab_path)
    arr = lab.array.copy()
    z = int(np.flatnonzero((arr != 255).any(axis=(1, 2)))[0])
    arr[z, 0, 0] = 254
    write_labels(arr, lab, lab_path)
    res = barl("train", "--images", ds / "imagesTr", "--out", tmp_path / "run", "--quiet", "--iterations", "1",
               "--patch", "16", "16", "16", "--device", "cpu")
    rel.expect_clear_error(res, "--classes")


# ------------------------------------------------------------------ hostile model files
class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_code_in_a_torch_zip_is_refused_without_unsafe_advice(rel, barl, tiny_run, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    data = load_checkpoint(tiny_run["model"])
    data["payload"] = _Payload(marker)
    torch.save(data, evil)
    src = _image(tmp_path / "case.nii.gz", shape=(4, 5, 6))
    line = rel.expect_clear_error(_predict(barl, evil, src, tmp_path / "p.nii.gz"), "refusing")
    assert "weights_only" not in line and "corrupt" not in line
    assert not marker.exists()


def test_nan_weights_are_refused(rel, barl, tiny_run, tmp_path):
    data = load_checkpoint(tiny_run["model"])
    name = next(k for k, v in data["model_state"].items() if v.is_floating_point() and v.numel() > 1)
    data["model_state"][name][0] = float("nan")
    bad = save_checkpoint(tmp_path / "nan.pt", data)
    src = _image(tmp_path / "case.nii.gz", shape=(4, 5, 6))
    rel.expect_clear_error(_predict(barl, bad, src, tmp_path / "p.nii.gz"), "NaN")
    assert not (tmp_path / "p.nii.gz").exists()


# ------------------------------------------------------------------ workspace
def _workspace(tmp_path: Path) -> Workspace:
    ws = Workspace.create(tmp_path / "ws", ["background", "tooth", "lesion"])
    ws.add_volume(Volume(np.zeros((4, 5, 6), np.float32)), "case")
    labels = np.full((4, 5, 6), 255, np.uint8)
    labels[1] = 1
    ws.save_labels("case", labels)
    return ws


@pytest.mark.parametrize("value", [-1, 0.7, np.nan, 3], ids=["minus-1", "0.7", "nan", "not-a-class"])
def test_label_values_refused_at_save_time(rel, tmp_path, value):
    ws = _workspace(tmp_path)
    before = rel.snapshot(ws.folder)
    labels = np.full((4, 5, 6), 255, np.float64)
    labels[2] = value
    with pytest.raises(LabelValueError):
        ws.save_labels("case", labels)
    rel.assert_kept(before)
    assert ws.annotated_slices("case") == [1]


@pytest.mark.parametrize(
    "state", [[], {"format": "napari-barl-workspace", "cases": {"a": 1}},
              {"format": "napari-barl-workspace", "cases": [{"nome": "x"}]},
              {"format": "napari-barl-workspace", "class_names": "ab"},
              {"format": "napari-barl-workspace", "model_history": [1]}],
    ids=["list", "cases-dict", "case-without-name", "class-names-string", "history-int"],
)
def test_workspace_json_of_the_wrong_shape(rel, tmp_path, state):
    ws = _workspace(tmp_path)
    ws.close()
    (ws.folder / "workspace.json").write_text(json.dumps(state))
    before = rel.snapshot(ws.folder)
    with pytest.raises(BarlError, match="workspace"):
        Workspace.open(ws.folder)
    rel.assert_kept(before)
    assert not (ws.folder / ".barl.lock").exists()


def test_read_only_workspace_refuses_writes(rel, tmp_path):
    ws = _workspace(tmp_path)
    ws.close()
    ro = Workspace.open(ws.folder, read_only=True)
    before = rel.snapshot(ws.folder)
    assert ro.annotated_slices("case") == [1]
    with pytest.raises(LockedError, match="read-only"):
        ro.save_labels("case", np.full((4, 5, 6), 255, np.uint8))
    rel.assert_kept(before)


# ------------------------------------------------------------------ extra cases (not in issue 14)
def _extra_input(kind: str, tmp_path: Path, model: Path) -> list:
    src = _image(tmp_path / "case.nii.gz", shape=(8, 16, 16))
    predict = ["predict", "--model", model, "--image", src, "--out", tmp_path / "p.nii.gz", "--device", "cpu"]
    if kind == "empty-volume-file":
        (tmp_path / "empty.nii.gz").write_bytes(b"")
        return ["info", tmp_path / "empty.nii.gz"]
    if kind in ("negative-dimension", "zero-dimension"):
        p = write_volume(Volume(np.zeros((4, 4, 4), np.float32)), tmp_path / "d.nii", compress=False)
        raw = bytearray(p.read_bytes())
        raw[40:48] = struct.pack("<4h", 3, -4 if kind == "negative-dimension" else 0, 4, 4)
        p.write_bytes(bytes(raw))
        return ["info", p]
    if kind == "model-is-a-folder":
        (tmp_path / "m.pt").mkdir()
        return [*predict[:2], tmp_path / "m.pt", *predict[3:]]
    if kind == "empty-model-file":
        (tmp_path / "m.pt").write_bytes(b"")
        return [*predict[:2], tmp_path / "m.pt", *predict[3:]]
    if kind == "class-names-not-strings":
        data = load_checkpoint(model)
        data["class_names"] = [0, 1, 2]
        torch.save(data, tmp_path / "m.pt")
        return [*predict[:2], tmp_path / "m.pt", *predict[3:]]
    if kind == "network-setting-of-wrong-type":
        data = load_checkpoint(model)
        data["network"]["base_channels"] = "wide"
        torch.save(data, tmp_path / "m.pt")
        return [*predict[:2], tmp_path / "m.pt", *predict[3:]]
    if kind == "overlap-1.5":
        return [*predict, "--overlap", "1.5"]
    if kind == "batch-0":
        return [*predict, "--batch", "0"]
    if kind == "suggest-top-minus-1":
        return ["suggest", "--model", model, "--images", tmp_path, "--top", "-1", "--device", "cpu"]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", [
    "empty-volume-file", "negative-dimension", "zero-dimension", "model-is-a-folder", "empty-model-file",
    "class-names-not-strings", "network-setting-of-wrong-type", "overlap-1.5", "batch-0", "suggest-top-minus-1",
])
def test_extra_hostile_cases(rel, barl, tiny_run, tmp_path, kind):
    argv = _extra_input(kind, tmp_path, tiny_run["model"])
    before = rel.snapshot(tmp_path)
    rel.expect_clear_error(barl(*argv))
    rel.assert_kept(before)


def test_memory_budget_is_checked_before_reading(rel, barl, tmp_path, monkeypatch):
    """Extra case: a volume (file or DICOM stack) larger than the memory available is refused
    from its header; the budget is faked small so the test is the same on any machine.
    """
    import barl_core.io.budget as budget

    folder = tmp_path / "dicom"
    folder.mkdir()
    _dicom_series(folder, "1.2.826.0.1.1", 4, 0)
    src = _image(tmp_path / "case.nii.gz", shape=(8, 16, 16))
    monkeypatch.setattr(budget, "available_memory", lambda: 64)  # bytes
    rel.expect_clear_error(barl("info", folder), "memory")
    rel.expect_clear_error(barl("info", src), "memory")
