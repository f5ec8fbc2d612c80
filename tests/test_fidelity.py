"""Multi-fidelity studies for large data: successive halving over data.sample_fraction, and the
per-epoch validation that stays cheap as the catalog grows."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from conftest import TINY_SYNTHETIC

from experiments import sweep
from experiments.cli.compose import compose_run
from experiments.sweeping.fidelity import rung_scales
from experiments.sweeping.plan import plan_from_argv
from experiments.sweeping.search_config import FidelityConfig
from recsys.config import MIN_VAL_PAIRS, TrainConfig


def test_rungs_follow_the_training_pairs() -> None:
    cfg = FidelityConfig()  # 4 rungs at most, factor 3, >= 200k pairs on the smallest
    assert rung_scales(599_999, cfg) == (1.0,)  # below 3 x 200k: plain trials
    assert rung_scales(600_000, cfg) == pytest.approx((1 / 3, 1.0))
    assert rung_scales(1_800_000, cfg) == pytest.approx((1 / 9, 1 / 3, 1.0))
    # All of Amazon Electronics (5.5M training pairs): 205k, 614k, 1.8M, then all of them.
    assert rung_scales(5_526_271, cfg) == pytest.approx((1 / 27, 1 / 9, 1 / 3, 1.0))
    assert rung_scales(10**9, cfg) == pytest.approx((1 / 27, 1 / 9, 1 / 3, 1.0))
    assert rung_scales(10**9, replace(cfg, max_rungs=1)) == (1.0,)
    assert rung_scales(10**6, replace(cfg, reduction_factor=2)) == pytest.approx(
        (1 / 4, 1 / 2, 1.0))  # 1/8 would be 125k pairs


def test_a_searched_sample_fraction_turns_rungs_off() -> None:
    plan = plan_from_argv([], check=False)
    assert plan.with_rungs(10**7).rungs == pytest.approx((1 / 27, 1 / 9, 1 / 3, 1.0))
    assert plan_from_argv(["data.sample_fraction=0.5"], check=False).with_rungs(
        1_200_000).rungs == pytest.approx((1 / 3, 1.0))  # rungs of the pairs trials train on
    searched = plan_from_argv(["search=wide"], check=False)  # searches data.sample_fraction
    assert searched.with_rungs(10**7).rungs == ()


def test_per_epoch_validation_fits_the_score_budget() -> None:
    cfg = TrainConfig()  # 25,000 pairs and 600M scores
    assert cfg.epoch_val_pairs(4_600) == 25_000  # small catalogs: the subsample as set
    assert cfg.epoch_val_pairs(24_000) == 25_000
    assert cfg.epoch_val_pairs(96_364) == 6_226  # all of Amazon Electronics
    assert cfg.epoch_val_pairs(10**8) == MIN_VAL_PAIRS
    assert replace(cfg, val_score_budget=None).epoch_val_pairs(96_364) == 25_000
    assert replace(cfg, val_subsample=None, val_score_budget=None).epoch_val_pairs(10**6) is None
    with pytest.raises(Exception, match="train.val_score_budget"):
        TrainConfig(val_score_budget=0)


def test_a_rung_is_fit_alone_on_the_validation_subsample(tmp_path: Path) -> None:
    from recsys.cache import load_prepared
    from recsys.training import fit, make_setup, run

    _, config = compose_run([f"data.cache_dir={tmp_path / 'cache'}", *TINY_SYNTHETIC,
                             "train.epochs=2", "train.val_subsample=200",
                             "train.early_stopping_patience=null"])
    history, epoch = fit(config, make_setup(config, load_prepared(config.data)[0]))  # a rung's run
    assert epoch == 2 and "test_top_100" not in history[-1]
    assert history[-1]["val_top_100"] * 200 == pytest.approx(round(history[-1]["val_top_100"]
                                                                   * 200))  # 200 pairs
    full = run(config)  # the same training; then every validation pair and the test set
    assert [h["val_top_100"] for h in full.history] == [h["val_top_100"] for h in history]
    assert "test_top_100" in full.metrics and full.intervals


@pytest.mark.slow
def test_a_multi_fidelity_study_prunes_between_rungs(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    study_dir = tmp_path / "study"
    args = [f"data.cache_dir={tmp_path / 'cache'}", *TINY_SYNTHETIC, "train.epochs=3",
            "train.batch_size=256", f"search.dir={study_dir}", "search.n_trials=3",
            "search.fidelity.max_rungs=3", "search.fidelity.min_rung_pairs=1000",
            "search.sampler.name=random",
            # a good trial first, then a hopeless learning rate, which the first rung stops
            "search.enqueue_trials=[{optimizer: adagrad, optimizer.learning_rate: 0.3},"
            "{optimizer: adam, optimizer.learning_rate: 0.000001}]"]
    assert sweep.main(args) == 0
    out = capsys.readouterr().out
    assert "multi-fidelity study (3 rungs" in out
    study = optuna.load_study(study_name="default", storage=f"sqlite:///{study_dir / 'study.db'}")
    good, hopeless = study.trials[0], study.trials[1]
    assert good.state == optuna.trial.TrialState.COMPLETE
    fractions = [r["sample_fraction"] for r in good.user_attrs["rungs"]]
    assert fractions == pytest.approx([1 / 9, 1 / 3])
    assert sorted(good.intermediate_values) == [1, 3]  # the SuccessiveHalvingPruner's rungs
    assert [r["value"] for r in good.user_attrs["rungs"]] == [
        good.intermediate_values[1], good.intermediate_values[3]]
    # Its value: the last rung (all of its data) ranked on every validation pair.
    metrics = json.loads((study_dir / "trials" / "0" / "metrics.json").read_text())
    assert good.value == metrics["metrics"]["val_top_100"]
    assert hopeless.state == optuna.trial.TrialState.PRUNED
    assert sorted(hopeless.intermediate_values) == [1]
    assert hopeless.intermediate_values[1] < good.intermediate_values[1]
    assert "pruned after rung 1 of 3 (data.sample_fraction=0.111)" in hopeless.user_attrs[
        "reason"]
    # Stopped on the first rung: it never trained on all of its data.
    assert not (study_dir / "trials" / "1" / "metrics.json").exists()
    assert (study_dir / "trials" / "1" / "config.yaml").exists()
    assert (study_dir / "best" / "config.yaml").exists()
    # Other rungs would compare trials pruned on other data: a resume with them is refused.
    assert sweep.main([*args, "search.fidelity.max_rungs=2", "search.n_trials=4"]) == 2
    assert "search.fidelity.rungs ([0.111111, 0.333333, 1.0] -> [0.333333, 1.0])" in \
        capsys.readouterr().err


def test_rungs_rank_on_any_validation_metric(tmp_path: Path) -> None:
    """A study ranked on NDCG@10 climbs the rungs on NDCG@10 too (a rung's figures were once
    its top-k accuracies alone: every such trial failed with a KeyError)."""
    from experiments.sweeping.objective import Objective
    from experiments.sweeping.plan import group_options
    from experiments.sweeping.space import parse_space

    overrides = [f"data.cache_dir={tmp_path / 'cache'}", *TINY_SYNTHETIC, "train.epochs=1",
                 "train.monitor=val_ndcg_10"]
    space = parse_space({"model.embedding_dim": "choice(8, 16)"}, {}, compose_run(overrides)[0],
                        group_options())
    objective = Objective(space, overrides, tmp_path / "study", "val_ndcg_10",
                          rungs=(1 / 3, 1.0))
    trial = optuna.trial.FixedTrial({"model.embedding_dim": 8}, number=0)
    value = objective(trial)
    [rung] = trial.user_attrs["rungs"]
    assert rung["sample_fraction"] == pytest.approx(1 / 3) and 0 <= rung["value"] <= 1
    metrics = json.loads((tmp_path / "study" / "trials" / "0" / "metrics.json").read_text())
    assert value == metrics["metrics"]["val_ndcg_10"]
