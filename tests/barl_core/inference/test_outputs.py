"""One naming rule for prediction files, and the one writer that follows it (with agreement)."""

from __future__ import annotations

import numpy as np

from barl_core.inference.agreement import load_confidence, predict_with_agreement
from barl_core.inference.export import predict_files
from barl_core.inference.outputs import output_paths
from barl_core.io.volume import Volume, read_volume, write_volume


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
