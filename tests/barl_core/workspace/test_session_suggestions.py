"""The app's suggestions through :class:`Session`: the ``focused`` ranking with the features stored
beside each prediction, and the case order from that same ranking (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from barl_core.inference.model import load_model
from barl_core.inference.predict import predict_volume
from barl_core.io.volume import Volume
from barl_core.networks.unet import BiBranchNet
from barl_core.workspace.session import Session
from barl_core.workspace.suggestions import WorkspaceRanking
from tests.barl_core.inference.conftest import CFG, write_checkpoint

SHAPE = (40, 24, 24)
CLASSES = ["background", "big", "small"]


def _two_classes() -> np.ndarray:
    """A large class 1 (z 8-31) and a small class 2 (z 12-27, 3x3 voxels) beside it."""
    truth = np.zeros(SHAPE, np.uint8)
    truth[8:32, 4:16, 4:14] = 1
    truth[12:28, 18:21, 18:21] = 2
    return truth


def _session(tmp_path, names) -> Session:
    s = Session.open(tmp_path / "ws", CLASSES)
    for n in names:
        s.add_volume(Volume(np.zeros(SHAPE, np.float32)), n)
    return s


def _two_candidates() -> np.ndarray:
    """Class 1's border doubted equally on slices 10 and 30, both 10 slices from slice 20."""
    dis = np.full(SHAPE, 0.01, np.float32)
    dis[10, 4:16, 4] = 0.5
    dis[30, 4:16, 4] = 0.5
    return dis


def test_a_real_prediction_stores_the_features_the_ranking_reads(tmp_path):
    torch.manual_seed(0)
    net = BiBranchNet(CFG).eval()
    s = Session.open(tmp_path / "ws", ["background", "tooth", "lesion"])
    rng = np.random.default_rng(0)
    vol = Volume(rng.normal(100, 30, (12, 16, 16)).astype(np.float32))
    case = s.add_volume(vol, "a")
    s.annotate_slice(case, 6, np.ones((16, 16), np.uint8))
    model = write_checkpoint(s.workspace.models_dir / "run_1" / "model.pt", net)
    s.workspace.add_version(model, config={}, data_snapshot={case: [6]}, parent=None)

    outcome = s.predict([case])  # the app's prediction job: a real child process

    assert outcome.cases == [case]
    path = s.workspace.features_path(case)
    assert path.exists() and path.parent == s.workspace.predictions_dir
    feats = s.workspace.load_features(case)
    # the two-branch pass's feature space, the one the benchmark ranks with
    ref = predict_volume(load_model(model, device="cpu"), vol, return_features=True).slice_features
    assert feats.shape == ref.shape == (12, 2 * CFG.base_channels)
    np.testing.assert_allclose(feats, ref, rtol=1e-2, atol=1e-3)
    # what the session's ranking reads: the stored features, and the case's annotation as context
    ranking = WorkspaceRanking(s.workspace)
    np.testing.assert_array_equal(ranking.inputs(case).features, feats)
    np.testing.assert_array_equal(ranking.source(case).context.features, feats[[6]])
    assert ranking.source(case).space == s.workspace.record(case).prediction_model
    # an older workspace (no features file) still ranks, without the feature factor
    assert s.suggest_slices(case)
    path.unlink()
    assert s.workspace.load_features(case) is None and ranking.inputs(case).features is None
    assert s.suggest_slices(case)


def test_the_stored_features_decide_between_otherwise_equal_slices(tmp_path, rng):
    truth = _two_classes()
    s = _session(tmp_path, ["a"])
    s.annotate_slice("a", 20, truth[20])
    feats = rng.normal(size=(SHAPE[0], 6)).astype(np.float32)
    feats[10] = feats[20]  # slice 10 looks like the annotated slice to the network
    s.workspace.set_prediction("a", truth, _two_candidates(), features=feats)
    assert s.suggest_slices("a", top_k=1)[0].index == 30
    feats[[10, 30]] = feats[[30, 10]]  # now slice 30 is the look-alike
    s.workspace.set_prediction("a", truth, _two_candidates(), features=feats)
    assert s.suggest_slices("a", top_k=1)[0].index == 10


def test_annotations_of_other_cases_count_in_feature_space_within_one_model(tmp_path, rng):
    truth = _two_classes()
    s = _session(tmp_path, ["a", "b"])
    s.annotate_slice("a", 20, truth[20])  # case b has no annotation of its own
    fa, fb = rng.normal(size=(2, SHAPE[0], 6)).astype(np.float32)
    s.workspace.set_prediction("a", truth, np.full(SHAPE, 0.01, np.float32), features=fa,
                               model="m1.pt")
    picks = {}
    for look_alike in (10, 30):
        f = fb.copy()
        f[look_alike] = fa[20]  # one of b's two candidates looks like a's annotated slice
        s.workspace.set_prediction("b", truth, _two_candidates(), features=f, model="m1.pt")
        picks[look_alike] = s.suggest_slices("b", top_k=1)[0].index
    assert picks == {10: 30, 30: 10}
    # features of another model's prediction are another space: a's annotation no longer counts
    without = {}
    for look_alike in (10, 30):
        f = fb.copy()
        f[look_alike] = fa[20]
        s.workspace.set_prediction("b", truth, _two_candidates(), features=f, model="m2.pt")
        without[look_alike] = s.suggest_slices("b", top_k=1)[0].index
    assert without[10] == without[30]


def test_case_order_comes_from_the_focused_ranking_not_the_cached_scores(tmp_path):
    """An uncertain border of a small class outranks a case that is confident on its structure
    and doubts only an empty end slice; the old cached score (top-10% disagreement of the whole
    slice) orders them the other way."""
    truth = _two_classes()
    s = _session(tmp_path, ["confident", "uncertain"])
    for case in s.cases:
        s.annotate_slice(case, 20, truth[20])
    confident = np.full(SHAPE, 0.01, np.float32)
    confident[2] = 0.9  # an empty end where the branches argue about nothing that is there
    uncertain = np.full(SHAPE, 0.01, np.float32)
    uncertain[26, 17:22, 17:22] = 0.4  # the small class's border near its end: a real decision
    s.workspace.set_prediction("confident", truth, confident)
    s.workspace.set_prediction("uncertain", truth, uncertain)

    ranked = s.suggest_cases()
    assert [c.name for c in ranked] == ["uncertain", "confident"]
    assert ranked[0].score > ranked[1].score
    assert ranked[0].best_slice == 26 and "small" in ranked[0].reason
    assert ranked[0].n_annotated == 1
    # the case's best slice is its top slice suggestion: one ranking for both lists
    assert s.suggest_slices("uncertain")[0].index == ranked[0].best_slice
    old = s.workspace.disagreement_scores()
    assert old["confident"] > old["uncertain"]


def test_the_ranking_follows_new_annotations_and_predictions(tmp_path):
    truth = _two_classes()
    s = _session(tmp_path, ["a", "b"])
    for case in s.cases:
        s.annotate_slice(case, 20, truth[20])
    dis = np.full(SHAPE, 0.01, np.float32)
    dis[26, 17:22, 17:22] = 0.4
    s.workspace.set_prediction("a", truth, dis)
    assert s.suggest_cases() == []  # one predicted case: nothing to choose between
    s.workspace.set_prediction("b", truth, np.full(SHAPE, 0.01, np.float32))
    assert [c.name for c in s.suggest_cases()] == ["a", "b"]
    s.annotate_slice("a", 26, truth[26])  # the doubtful slice is answered: not asked again
    assert 26 not in {p.index for p in s.suggest_slices("a", top_k=10)}
    assert s.case_ranking().cases[[c.name for c in s.case_ranking().cases].index("a")].n_annotated == 2


@pytest.mark.parametrize("strategy", ["disagreement", "random"])
def test_the_baselines_still_rank_one_case(tmp_path, strategy):
    truth = _two_classes()
    s = _session(tmp_path, ["a"])
    s.workspace.set_prediction("a", truth, _two_candidates())
    picks = s.suggest_slices("a", top_k=2, strategy=strategy)
    assert len(picks) == 2 and all(p.reason == "" for p in picks)


def test_a_new_label_reloads_only_its_case_and_ranks_as_from_scratch(tmp_path, monkeypatch):
    truth = _two_classes()
    s = _session(tmp_path, ["a", "b", "c"])
    for case in s.cases:
        s.annotate_slice(case, 20, truth[20])
        s.workspace.set_prediction(case, truth, _two_candidates())
    ranking = WorkspaceRanking(s.workspace)
    ranking.rank()
    loaded = []
    real = ranking.inputs
    monkeypatch.setattr(ranking, "inputs", lambda name: loaded.append(name) or real(name))
    s.annotate_slice("b", 10, truth[10])
    after = ranking.rank()
    assert loaded == ["b"]  # the other cases' summaries were kept
    fresh = WorkspaceRanking(s.workspace).rank()
    assert after.cases == fresh.cases and after.slices == fresh.slices
    assert [c.name for c in after.cases][-1] == "b"  # its doubtful slice 10 is answered
