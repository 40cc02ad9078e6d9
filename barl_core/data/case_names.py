"""Case names: the one rule for a safe name, and how names come from files and layers.

Why one rule: a case name becomes file names (``labelsTr/<case>.nii.gz``,
``predictions/<case>_disagreement.nii.gz``, ``provenance/<case>.json``...), so a name such as
``../../etc/x`` must never let a write escape its folder, and every part of the package must
accept and refuse the same names. Two rules had drifted apart (the dataset loader accepted
spaces and ``:``, the workspace only ASCII); the stricter one is kept, widened to letters of
any script so that ``données_ç`` still works:

- starts with a letter or digit;
- then letters, digits, ``_``, ``.`` or ``-`` only (no spaces, no path separators, no
  control characters);
- no ``..``;
- at most :data:`MAX_NAME_BYTES` bytes in UTF-8, so that the longest derived file name stays
  under the 255-byte limit of common file systems.

A dataset file whose name breaks the rule is refused with a message that says how to rename
it; free text (a napari layer name) is turned into a valid name by :func:`sanitize_case_name`.
"""

from __future__ import annotations

import re

from barl_core.errors import InputFileError
from barl_core.io.volume import strip_extension

__all__ = [
    "MAX_NAME_BYTES",
    "validate_case_name",
    "sanitize_case_name",
    "case_name_from_file",
    "channel_index",
]

#: Longest case name in UTF-8 bytes (255 minus room for ``_disagreement.nii.gz`` and more).
MAX_NAME_BYTES = 200
_NAME_RE = re.compile(r"^[^\W_][\w.-]*$")
_RULE = (
    "use letters, digits, '_', '.' or '-', starting with a letter or digit "
    f"(no spaces, path separators or '..', at most {MAX_NAME_BYTES} bytes)"
)


def validate_case_name(name: str) -> str:
    """Return ``name`` if it is a safe case name (see the module's rule), else raise.

    Raises
    ------
    InputFileError
        The name breaks the rule; the message states the rule.
    """
    if (
        not isinstance(name, str)
        or not _NAME_RE.match(name)
        or ".." in name
        or len(name.encode("utf-8")) > MAX_NAME_BYTES
    ):
        raise InputFileError(f"invalid case name {name!r}: {_RULE}")
    return name


def sanitize_case_name(text: str) -> str:
    """Turn free text (a napari layer name, a file name) into a valid case name.

    Runs of other characters become ``_``; leading and trailing ``._-`` go; the name is cut
    to :data:`MAX_NAME_BYTES`. Empty results become ``"case"``.
    """
    stem = re.sub(r"[^\w.-]+", "_", text.strip()).strip("._-")
    stem = re.sub(r"\.{2,}", ".", stem)
    stem = stem.encode("utf-8")[:MAX_NAME_BYTES].decode("utf-8", "ignore").rstrip("._-")
    return stem or "case"


def channel_index(filename: str) -> int | None:
    """nnU-Net's channel suffix: ``NAME_0001.nii.gz`` -> 1; None without one."""
    stem = strip_extension(filename)
    if len(stem) > 5 and stem[-5] == "_" and stem[-4:].isdigit():
        return int(stem[-4:])
    return None


def case_name_from_file(filename: str) -> str:
    """``NAME_0000.nii.gz`` / ``NAME.nrrd`` -> ``NAME`` (nnU-Net's channel suffix removed)."""
    stem = strip_extension(filename)
    return stem[:-5] if channel_index(filename) is not None else stem
