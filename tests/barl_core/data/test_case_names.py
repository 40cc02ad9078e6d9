"""One rule for case names, shared by the dataset loader and the workspace."""

from __future__ import annotations

import numpy as np
import pytest

from barl_core.data.case_names import (
    MAX_NAME_BYTES,
    case_name_from_file,
    channel_index,
    sanitize_case_name,
    validate_case_name,
)
from barl_core.data.dataset import load_dataset
from barl_core.errors import InputFileError
from barl_core.io.volume import Volume, write_volume


@pytest.mark.parametrize("name", ["case_01", "liver-3.b", "données_ç", "x" * MAX_NAME_BYTES])
def test_valid_names(name):
    assert validate_case_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "a..b", "../x", "a/b", "a\\b", "a b", "a:b", "_a", ".hidden", "-a",
     "x\x00y", "tab\there", "é" * (MAX_NAME_BYTES // 2 + 1), 3],
)
def test_invalid_names_say_the_rule(name):
    with pytest.raises(InputFileError, match="letters, digits"):
        validate_case_name(name)


@pytest.mark.parametrize("text", ["my scan (1)", "../../etc/passwd", "  ", "é" * 300, "a..b"])
def test_sanitized_names_are_valid(text):
    assert validate_case_name(sanitize_case_name(text))


def test_names_from_files():
    assert case_name_from_file("liver_12_0000.nii.gz") == "liver_12"
    assert channel_index("liver_12_0001.nii.gz") == 1 and channel_index("liver.nii.gz") is None


def test_dataset_with_a_name_the_workspace_would_refuse(tmp_path):
    write_volume(Volume(np.zeros((4, 5, 6), np.float32)), tmp_path / "imagesTr" / "my scan.nii.gz")
    with pytest.raises(InputFileError, match="invalid case name 'my scan'"):
        load_dataset(tmp_path)
