"""``--set`` overrides: only the named settings change, and the runs carry them in their name."""

from __future__ import annotations

import pytest

from benchmarks import common


def test_label_efficiency_set_changes_only_the_named_settings_and_names_the_runs():
    from benchmarks.label_efficiency_parts.plan import Budget, RunSpec, build_plan, parse_overrides

    over = parse_overrides("pcbc=0.25, dpr=0.5,cps_weight=0.3")
    cfg = common.build_train_config(method="barl", iterations=5, patch=(16, 16, 16), base_channels=4,
                                    num_classes=3, seed=0, overrides=dict(over))
    plain = common.build_train_config(method="barl", iterations=5, patch=(16, 16, 16), base_channels=4,
                                      num_classes=3, seed=0)
    assert (cfg.losses.dpr, cfg.losses.pcbc, cfg.cps_weight) == (0.5, 0.25, 0.3)
    assert cfg.losses.pcbc_area_floor == plain.losses.pcbc_area_floor  # the preset's other settings stay
    assert cfg.losses.region == plain.losses.region and plain.losses.dpr != 0.5
    budget = Budget("10%", 17, 0.1)
    plan = build_plan([budget], ["sparse"], ["barl"], [0], upper=False, ablation=True,
                      ablation_budget=budget, pool_size=168, ablation_terms=("region",), overrides=over)
    assert [p.variant for p in plan] == ["barl [cps_weight=0.3,dpr=0.5,pcbc=0.25]",
                                         "barl -region [cps_weight=0.3,dpr=0.5,pcbc=0.25]"]
    assert RunSpec("main", budget, "sparse", "barl", 0).key not in {p.key for p in plan}
    with pytest.raises(SystemExit):
        parse_overrides("dpr")


def test_set_takes_mode_names_as_text():
    from benchmarks.label_efficiency_parts.plan import parse_overrides

    over = dict(parse_overrides("region_mode=contrast,dpr=1"))
    assert over == {"dpr": 1.0, "region_mode": "contrast"}
    cfg = common.build_train_config(method="barl", iterations=5, patch=(16, 16, 16), base_channels=4,
                                    num_classes=3, seed=0, overrides=over)
    assert cfg.losses.region_mode == "contrast" and cfg.losses.dpr == 1.0
    with pytest.raises(SystemExit, match="needs a number"):
        parse_overrides("dpr=high")
