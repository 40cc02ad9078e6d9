"""Volume IO: geometry survives every format, DICOM series, unsigned label maps."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from barl_core.errors import GeometryMismatchError, InputFileError, InvalidVolumeError
from barl_core.io.volume import (
    Volume,
    check_same_grid,
    read_volume,
    strip_extension,
    write_labels,
    write_volume,
)


def _rotation(a: float, b: float, c: float) -> np.ndarray:
    ca, sa, cb, sb, cc, sc = (
        math.cos(a),
        math.sin(a),
        math.cos(b),
        math.sin(b),
        math.cos(c),
        math.sin(c),
    )
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rz = np.array([[cc, -sc, 0], [sc, cc, 0], [0, 0, 1]])
    return rz @ ry @ rx


@pytest.fixture
def oblique_volume(rng) -> Volume:
    arr = rng.normal(size=(5, 7, 9)).astype(np.float32)
    return Volume(
        arr,
        spacing=(2.5, 0.7, 0.45),
        origin=(-12.5, 30.25, 7.0),
        direction=tuple(_rotation(0.3, -0.2, 0.5).ravel()),
    )


@pytest.mark.parametrize("ext", [".nii", ".nii.gz", ".nrrd", ".mha", ".mhd"])
def test_geometry_round_trip(tmp_path, oblique_volume, ext):
    path = write_volume(oblique_volume, tmp_path / f"vol{ext}")
    back = read_volume(path)
    np.testing.assert_array_equal(back.array, oblique_volume.array)
    assert back.shape == (5, 7, 9)
    np.testing.assert_allclose(back.spacing, oblique_volume.spacing, atol=1e-5)
    np.testing.assert_allclose(back.origin, oblique_volume.origin, atol=1e-4)
    np.testing.assert_allclose(back.direction, oblique_volume.direction, atol=1e-5)
    check_same_grid(oblique_volume, back)
    # no temporary left beside the output
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []


@pytest.mark.parametrize("ext", [".nii", ".nii.gz"])
def test_nifti_affine_matches_nibabel(tmp_path, oblique_volume, ext):
    path = write_volume(oblique_volume, tmp_path / f"vol{ext}")
    img = nib.load(str(path))
    d = np.asarray(oblique_volume.direction).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = d @ np.diag(oblique_volume.spacing[::-1])
    lps[:3, 3] = oblique_volume.origin
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    np.testing.assert_allclose(img.affine, ras, atol=1e-4)
    # nibabel indexes (x, y, z); ours is (z, y, x)
    np.testing.assert_array_equal(np.asarray(img.dataobj).transpose(2, 1, 0), oblique_volume.array)


def test_affine_zyx_maps_index_to_physical(oblique_volume):
    m = oblique_volume.affine_zyx()
    idx_zyx = np.array([3.0, 2.0, 4.0])
    phys_zyx = (m @ np.r_[idx_zyx, 1.0])[:3]
    img = oblique_volume.to_sitk()
    expected_xyz = img.TransformContinuousIndexToPhysicalPoint(tuple(idx_zyx[::-1]))
    np.testing.assert_allclose(phys_zyx, expected_xyz[::-1], atol=1e-9)


def _write_dicom_series(folder, array, spacing, series_uid, *, position_offset=0.0):
    folder.mkdir(parents=True, exist_ok=True)
    vol = sitk.GetImageFromArray(array.astype(np.int16))
    vol.SetSpacing([float(s) for s in spacing[::-1]])
    vol.SetOrigin((10.0, -5.0, position_offset))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = vol.GetDirection()
    orientation = "\\".join(
        str(v)
        for v in (
            direction[0],
            direction[3],
            direction[6],
            direction[1],
            direction[4],
            direction[7],
        )
    )
    for k in range(vol.GetDepth()):
        sl = vol[:, :, k]
        pos = vol.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in [
            ("0008|0060", "CT"),
            ("0008|0016", "1.2.840.10008.5.1.4.1.1.2"),
            ("0008|0018", f"{series_uid}.{k + 1}"),
            ("0020|000d", "1.2.826.0.1.3680043.2.1125.1"),
            ("0020|000e", series_uid),
            ("0020|0011", series_uid[-1]),
            ("0020|0013", str(k + 1)),
            ("0020|0032", "\\".join(str(p) for p in pos)),
            ("0020|0037", orientation),
            ("0018|0050", str(spacing[0])),
            ("0028|0030", f"{spacing[1]}\\{spacing[2]}"),
        ]:
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{series_uid[-1]}_{k:03d}.dcm"))
        writer.Execute(sl)


def test_dicom_series_folder(tmp_path, rng):
    arr = rng.integers(-1000, 2000, size=(4, 6, 5)).astype(np.int16)
    folder = tmp_path / "dicom"
    _write_dicom_series(folder, arr, (1.25, 0.5, 0.6), "1.2.826.0.1.3680043.2.1125.2.1")
    vol = read_volume(folder)
    assert vol.shape == (4, 6, 5)
    np.testing.assert_array_equal(vol.array, arr)
    np.testing.assert_allclose(vol.spacing, (1.25, 0.5, 0.6), atol=1e-4)
    np.testing.assert_allclose(vol.origin, (10.0, -5.0, 0.0), atol=1e-4)


def test_dicom_folder_with_two_series_is_refused(tmp_path, rng):
    folder = tmp_path / "mixed"
    _write_dicom_series(folder, rng.integers(0, 100, (3, 4, 4)), (1.0, 1.0, 1.0), "1.2.3.4.5.1")
    _write_dicom_series(
        folder,
        rng.integers(0, 100, (3, 4, 4)),
        (1.0, 1.0, 1.0),
        "1.2.3.4.5.2",
        position_offset=50.0,
    )
    with pytest.raises(InputFileError, match="2 DICOM series"):
        read_volume(folder)
    one = read_volume(folder, series_id="1.2.3.4.5.2")
    assert one.shape == (3, 4, 4)


@pytest.mark.parametrize(("max_value", "dtype"), [(3, np.uint8), (255, np.uint8), (300, np.uint16)])
def test_label_maps_are_written_unsigned(tmp_path, oblique_volume, max_value, dtype):
    labels = np.zeros(oblique_volume.shape, dtype=np.int64)
    labels[1, 2, 3] = max_value
    path = write_labels(labels, oblique_volume, tmp_path / "lab.nii.gz")
    back = read_volume(path)
    assert back.array.dtype == dtype
    assert int(back.array.max()) == max_value
    check_same_grid(oblique_volume, back)


def test_write_labels_refuses_bad_values(tmp_path, oblique_volume):
    with pytest.raises(InvalidVolumeError):
        write_labels(np.full(oblique_volume.shape, -1), oblique_volume, tmp_path / "l.nii.gz")
    with pytest.raises(InvalidVolumeError):
        write_labels(np.full(oblique_volume.shape, 0.5), oblique_volume, tmp_path / "l.nii.gz")
    with pytest.raises(GeometryMismatchError):
        write_labels(np.zeros((2, 2, 2)), oblique_volume, tmp_path / "l.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_check_same_grid_reports_each_difference(oblique_volume):
    other = Volume(oblique_volume.array, spacing=(2.5, 0.7, 0.5), origin=oblique_volume.origin)
    with pytest.raises(GeometryMismatchError, match="spacing") as info:
        check_same_grid(oblique_volume, other)
    assert "direction" in str(info.value)


def test_strip_extension_knows_double_suffix():
    assert strip_extension("case_0000.nii.gz") == "case_0000"
    assert strip_extension("a.b.mha") == "a.b"
