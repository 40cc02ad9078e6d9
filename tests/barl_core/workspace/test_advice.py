""""Label more or stop?": the advice rules."""

from __future__ import annotations

from barl_core.workspace.advice import AdviceConfig, advise


def test_advice_rules():
    cfg = AdviceConfig()
    a = advise([], n_annotated=2, has_model=False, suggestions=["s1", "s2", "s3", "s4"])
    assert a.action == "label-more" and a.n_slices == 3 and a.slices == ["s1", "s2", "s3"]
    assert advise([], n_annotated=6, has_model=False).action == "train"
    assert advise([(5, 0.5)], n_annotated=9, unused_slices=4, has_model=True).action == "fine-tune"
    good = advise(
        [(15, 0.855), (20, 0.86), (25, 0.865)],
        n_annotated=25,
        has_model=True,
        correction_dice=[0.95, 0.97],
        disagreement_trend=[0.2, 0.1],
    )
    assert good.action == "export"
    # humans still correct a lot: not good enough
    busy = advise(
        [(15, 0.855), (20, 0.86), (25, 0.865)],
        n_annotated=25,
        has_model=True,
        correction_dice=[0.5, 0.6],
        suggestions=list(range(30)),
    )
    assert busy.action == "label-more"
    # slope 0.02/slice, 0.15 to go -> 8 slices
    more = advise(
        [(5, 0.5), (10, 0.6), (15, 0.7)],
        n_annotated=15,
        has_model=True,
        suggestions=list(range(30)),
        cfg=cfg,
    )
    assert more.action == "label-more" and more.n_slices == 8 and more.slices == list(range(8))
