"""What keeps a study on the whole Amazon Electronics file affordable: a fixed validation
subsample per epoch with exact final metrics, and vectors kept only where best/ may need them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna
import pytest
from conftest import TINY_SYNTHETIC, TINY_TRAIN

from experiments import sweep, train
from experiments.cli.compose import compose_run
from recsys.evaluation import HeldOut, subsample
from recsys.serving import load_vectors


def test_the_validation_subsample_is_fixed_by_the_data_seed() -> None:
    held = HeldOut(np.arange(1000), np.arange(1000) % 7)
    a, b = subsample(held, 100, seed=42), subsample(held, 100, seed=42)
    assert len(a.users) == 100 and np.array_equal(a.users, b.users)
    assert np.all(np.diff(a.users) > 0)  # original order, no repeats
    assert not np.array_equal(a.users, subsample(held, 100, seed=43).users)
    assert subsample(held, 1000, seed=42) is held and subsample(held, None, seed=42) is held


def test_epochs_use_the_subsample_and_reported_metrics_every_pair(tmp_path: Path) -> None:
    from recsys.training import run

    overrides = [f"data.cache_dir={tmp_path / 'cache'}", *TINY_SYNTHETIC, *TINY_TRAIN,
                 "train.early_stopping_patience=null"]
    _, config = compose_run([*overrides, "train.val_subsample=50"])
    results = [run(replace(config, train=replace(config.train, seed=seed))) for seed in (1, 2)]
    _, full_config = compose_run([*overrides, "train.val_subsample=null"])
    full = run(full_config)
    n_val = full.data_stats["validation"]
    assert n_val > 1000
    for result in results:
        for epoch in result.history:  # each epoch: hits out of the same 50 pairs
            assert epoch["val_top_100"] * 50 == pytest.approx(round(epoch["val_top_100"] * 50))
        # The reported number ranks every validation pair once, with the kept weights.
        assert result.metrics["val_top_100"] * n_val == pytest.approx(
            round(result.metrics["val_top_100"] * n_val))
    # Same seed and weights: the full set's number does not depend on the per-epoch sample.
    same = run(replace(full_config, train=replace(full_config.train, seed=config.train.seed)))
    sampled = run(config)
    assert sampled.metrics == pytest.approx(same.metrics)
    assert sampled.history[-1]["val_top_100"] != pytest.approx(same.history[-1]["val_top_100"])


def test_vectors_switches_for_plain_runs(tmp_path: Path) -> None:
    base = [f"data.cache_dir={tmp_path / 'cache'}", *TINY_SYNTHETIC, *TINY_TRAIN,
            "train.epochs=1"]
    assert train.main([*base, f"hydra.run.dir={tmp_path / 'none'}",
                       "train.save_vectors=false"]) == 0
    assert not (tmp_path / "none" / "vectors.npz").exists()
    assert (tmp_path / "none" / "metrics.json").exists()
    assert train.main([*base, f"hydra.run.dir={tmp_path / 'f32'}"]) == 0
    assert train.main([*base, f"hydra.run.dir={tmp_path / 'f16'}",
                       "train.vectors_dtype=float16"]) == 0
    f32 = load_vectors(tmp_path / "f32" / "vectors.npz")
    f16 = load_vectors(tmp_path / "f16" / "vectors.npz")
    assert f16["item_vectors"].dtype == np.float16 and f32["item_vectors"].dtype == np.float32
    assert np.allclose(f16["item_vectors"], f32["item_vectors"], atol=1e-3)
    assert train.main([*base, "train.vectors_dtype=float64"]) == 2


@pytest.mark.slow
def test_a_study_keeps_vectors_only_for_its_best_trials(tmp_path: Path) -> None:
    args = [f"data.cache_dir={tmp_path / 'cache'}", *TINY_SYNTHETIC, *TINY_TRAIN,
            f"search.dir={tmp_path / 'study'}", "search.n_trials=3", "search.keep_vectors=1",
            "search.pruner.name=none", "search.enqueue_trials=[]"]
    assert sweep.main(args) == 0
    study = optuna.load_study(study_name="default",
                              storage=f"sqlite:///{tmp_path / 'study' / 'study.db'}")
    trials = tmp_path / "study" / "trials"
    kept = sorted(p.parent.name for p in trials.glob("*/vectors.npz"))
    assert kept == [str(study.best_trial.number)]
    assert (tmp_path / "study" / "best" / "model" / "saved_model.pb").is_file()
    for t in study.trials:  # every trial keeps its config, metrics and events
        assert json.loads((trials / str(t.number) / "metrics.json").read_text())["metrics"]
    assert sweep.main([*args, "search.keep_vectors=0"]) == 2
