"""One naming rule for prediction files, and the one writer that follows it (with agreement)."""

from __future__ import annotations

import numpy as np

from barl_core.inference.agreement import load_confidence, load_features, predict_with_agreement
from barl_core.inference.export import predict_files
from barl_core.inference.outputs import features_path, output_paths
from barl_core.inference.predict import predict_volume
from barl_core.io.volume import Volume, read_volume, write_volume
from tests.barl_core.inference.conftest import CFG


def test_output_paths(tmp_path):
    lab, dis, conf = output_paths(tmp_path, "case_1")
    assert (lab.name, dis.name, conf.name) == (
        "case_1.nii.gz", "case_1_disagreement.nii.gz", "case_1_confidence.npz")
    assert output_paths(tmp_path, "c", tmp_path / "d")[1].parent == tmp_path / "d"


def test_predict_files_with_agreement_writes_what_the_rule_says(tmp_path, model, rng):
    vol = Volume(rng.normal(0, 100, (9, 14, 12)).astype(np.float32), spacing=(1.5, 0.5, 0.75))
    src = write_volume(vol, tmp_path / "in" / "c.nii.gz")
    [w] = predict_files(model, [src], tmp_path / "out", agreement=True)
    lab, dis, conf = output_paths(tmp_path / "out", "c")
    assert (w.labels, w.disagreement, w.confidence) == (lab, dis, conf)
    expected = predict_with_agreement(model, read_volume(src))
    np.testing.assert_array_equal(read_volume(lab).array, expected.labels)
    np.testing.assert_array_equal(load_confidence(conf), expected.confidence)
    [plain] = predict_files(model, [src], tmp_path / "plain")
    assert plain.confidence is None and not output_paths(tmp_path / "plain", "c")[2].exists()


def test_agreement_features_are_the_two_branch_pass_features_and_are_written_beside(tmp_path, model, rng):
    """The Session's agreement prediction stores the feature space the benchmark ranks with:
    branch a's pooled decoder map then branch b's, as the two-branch pass returns them."""
    vol = Volume(rng.normal(0, 100, (11, 14, 12)).astype(np.float32), spacing=(1.5, 0.5, 0.75))
    both = predict_volume(model, vol, precision="float32", return_features=True).slice_features
    agree = predict_with_agreement(model, vol, precision="float32", return_features=True)
    assert agree.slice_features.shape == both.shape == (11, 2 * CFG.base_channels)
    np.testing.assert_allclose(agree.slice_features, both, rtol=1e-5, atol=1e-6)
    assert predict_with_agreement(model, vol, precision="float32").slice_features is None
    src = write_volume(vol, tmp_path / "in" / "c.nii.gz")
    [w] = predict_files(model, [src], tmp_path / "out", agreement=True, features=True)
    assert w.features == features_path(tmp_path / "out", "c") and w.features.name == "c_features.npz"
    assert load_features(w.features).shape == both.shape
    [plain] = predict_files(model, [src], tmp_path / "plain", agreement=True)
    assert plain.features is None and not features_path(tmp_path / "plain", "c").exists()
