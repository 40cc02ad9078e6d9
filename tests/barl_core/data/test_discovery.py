"""The one folder scanner: what counts as a volume file in a folder."""

from __future__ import annotations

import numpy as np
import pytest

from barl_core.data.discovery import is_volume_name, volume_files
from barl_core.errors import InputFileError
from barl_core.io.volume import Volume, write_volume


def test_lists_volumes_sorted_and_skips_the_rest(tmp_path):
    vol = Volume(np.zeros((3, 4, 5), np.float32))
    for name in ("b.nii.gz", "a.nrrd", ".a.nii.gz.tmp.nii.gz", "c.mha"):
        write_volume(vol, tmp_path / name)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub.nii.gz").mkdir()
    assert [p.name for p in volume_files(tmp_path)] == ["a.nrrd", "b.nii.gz", "c.mha"]
    assert is_volume_name("X.NII.GZ") and not is_volume_name("x.raw")


def test_refuses_names_that_are_paths_elsewhere(tmp_path):
    (tmp_path / "..\\evil.nii.gz").write_bytes(b"")
    with pytest.raises(InputFileError, match="invalid case name"):
        volume_files(tmp_path)
    with pytest.raises(InputFileError, match="cannot list"):
        volume_files(tmp_path / "missing")
