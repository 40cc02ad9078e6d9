"""The ITK side of volume files (barl_core.io.sitk_files): written files are read back before use."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from barl_core.errors import InputFileError, OutputFileError
from barl_core.io.sitk_files import read_image, verify_written


def _write(path, array):
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    return path


def test_verify_written_accepts_the_same_grid_and_voxels(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = _write(tmp_path / "a.nrrd", arr)
    verify_written(path, sitk.GetImageFromArray(arr), arr)  # no error


def test_verify_written_refuses_another_grid_type_or_voxels(tmp_path):
    arr = np.zeros((2, 3, 4), np.uint8)
    path = _write(tmp_path / "a.nii.gz", arr)
    with pytest.raises(OutputFileError, match="reads back as"):
        verify_written(path, sitk.GetImageFromArray(arr.astype(np.uint16)), None)
    with pytest.raises(OutputFileError, match="reads back as"):
        verify_written(path, sitk.GetImageFromArray(np.zeros((2, 3, 5), np.uint8)), None)
    with pytest.raises(OutputFileError, match="voxels read back differ"):
        verify_written(path, sitk.GetImageFromArray(arr), arr + 1)


def test_read_image_refuses_an_unsupported_name_and_an_empty_dicom_folder(tmp_path):
    (tmp_path / "x.txt").write_text("not an image")
    with pytest.raises(InputFileError, match="unsupported file type"):
        read_image(tmp_path / "x.txt", None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="no DICOM series"):
        read_image(tmp_path / "empty", None)
