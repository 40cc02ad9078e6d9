"""load_model from a checkpoint file and predict_files: geometry, names, atomic outputs."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from barl_core.errors import CheckpointError
from barl_core.inference.export import predict_files
from barl_core.inference.model import load_model
from barl_core.io.volume import Volume, read_volume, write_volume
from tests.barl_core.inference.conftest import write_checkpoint


def _checkpoint(tmp_path, net, **extra):
    return write_checkpoint(tmp_path / "model.pt", net, **extra)


def test_load_model_and_predict_files(tmp_path, net, rng):
    path = _checkpoint(tmp_path, net)
    m = load_model(path, device="cpu")
    assert m.n_branches == 2 and m.class_names == ("background", "tooth", "lesion")
    assert "model_state" not in m.metadata and not m.module.training
    images = []
    for i, shape in enumerate([(9, 14, 12), (12, 12, 12)]):
        vol = Volume(
            rng.normal(0, 100, shape).astype(np.int16),
            spacing=(1.5, 0.5, 0.75), origin=(10.0 + i, -4.0, 2.0),
            direction=(-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0),
        )
        images.append(write_volume(vol, tmp_path / "in" / f"case_{i}.nii.gz"))
    seen = []
    written = predict_files(m, images, tmp_path / "out", progress=lambda *a: seen.append(a))
    assert [w.labels.name for w in written] == ["case_0.nii.gz", "case_1.nii.gz"]
    assert seen[-1][:2] == (2, 2)
    for src, w in zip(images, written, strict=True):
        ref = nib.load(str(src))
        for out in (w.labels, w.disagreement):
            img = nib.load(str(out))
            np.testing.assert_allclose(img.affine, ref.affine, atol=1e-5)
            assert img.shape == ref.shape
        lab = read_volume(w.labels)
        assert lab.array.dtype == np.uint8 and lab.array.max() < 3
        dis = nib.load(str(w.disagreement)).get_fdata()
        assert dis.min() >= 0 and dis.max() <= 1
    # no temporary files left behind
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "case_0.nii.gz", "case_0_disagreement.nii.gz", "case_1.nii.gz", "case_1_disagreement.nii.gz"
    ]
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "missing.pt", device="cpu")
