"""The benchmark's variants run and measure the same task (tiny data; timings not asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TINY_SYNTHETIC

from experiments.benchmarks.trial import run_variant


@pytest.mark.slow
def test_notebook_variant_and_ours_agree_on_the_same_task(tmp_path: Path) -> None:
    overrides = [f"data.cache_dir={tmp_path}", *TINY_SYNTHETIC, "train.epochs=2",
                 "train.batch_size=1024", "model.embedding_dim=16"]
    notebook = run_variant("b", overrides)
    ours = run_variant("c", overrides)
    for result in (notebook, ours):
        assert len(result["epoch_seconds"]) == 2 and result["trial_seconds"] > 0
        assert result["peak_gb"] > 0.1
    # Same data, same hyperparameters, same test pairs: the two models land close together,
    # and both well above chance (top-100 of a 300-item catalog by chance is ~0.33).
    assert abs(notebook["test_top_100"] - ours["test_top_100"]) < 0.05
    assert ours["test_top_100"] > 0.4 and ours["test_top_100"] > ours["popularity_test_top_100"]


def test_the_baselines_table_is_what_a_run_computes(tmp_path: Path) -> None:
    """One row per baseline with the value a run chooses and its test top-100, and a total."""
    from experiments.benchmarks.baselines import baselines_table
    from experiments.benchmarks.search import DataSet
    from experiments.cli.compose import compose_run
    from recsys.cache import load_prepared
    from recsys.training import run

    overrides = [f"data.cache_dir={tmp_path}", *TINY_SYNTHETIC, "eval.ials_factors=[16]",
                 "eval.ials_regularization=[1.0]", "eval.ials_alpha=[10.0]"]
    table = baselines_table([DataSet("tiny", [])], overrides)
    rows = {line.split()[2]: line.split() for line in table.splitlines()
            if line.startswith("tiny ")}
    assert {"item-kNN", "EASE", "iALS"} <= set(rows), table
    result = run(compose_run([*overrides, "train.epochs=1"])[1],
                 prepared=load_prepared(compose_run(overrides)[1].data)[0])
    ease = result.baselines["ease"]
    assert ease["param"].split()[0] in rows["EASE"]
    assert f"{ease['metrics']['test_top_100']:.4f}" in rows["EASE"]
    total = next(line for line in table.splitlines() if line.split()[:1] == ["all"])
    three = next(line for line in table.splitlines() if "kNN + EASE + iALS" in line)
    assert 0 < float(three.split()[-1]) <= float(total.split()[-1])  # transitions: the rest


def test_the_sequential_table_shows_each_towers_paired_test_against_transitions(
        tmp_path: Path) -> None:
    """Under the protocol, a tower's row ends with its NDCG@10 difference from the
    transitions baseline and the paired interval that a run of the same config computes,
    after its cost over the history tower's."""
    import numpy as np

    from experiments.benchmarks.search import DataSet
    from experiments.benchmarks.sequential import PROTOCOL, TOWERS, sequential_table
    from experiments.cli.compose import compose_run
    from recsys.cache import load_prepared
    from recsys.prepare import select_training
    from recsys.training import run

    overrides = [f"data.cache_dir={tmp_path}", *TINY_SYNTHETIC, "train.epochs=1",
                 "eval.baselines=[transitions]", "eval.interval_resamples=50"]
    table = sequential_table([DataSet("tiny", [])], overrides,
                             ["history tower", "sequence, catalog softmax"])
    row = next(line for line in table.splitlines()[2:] if "history tower" in line)
    # Each tower's cost beside the history tower's: its run seconds over the history row's
    # (the table rounds seconds to whole ones; the ratio is of the unrounded ones).
    cells = [line.split() for line in table.splitlines()[2:4]]
    column = {"s": -7, "x-hist": -4}  # from the right: the paired test's 3 words come last
    assert table.splitlines()[1].split()[-9:-4] == ["s", "train/ep", "val/ep", "x-hist", "NDCG@10"]
    assert cells[0][column["x-hist"]] == "1.0x", table
    history, sequence = (float(c[column["s"]]) for c in cells)
    ratio = float(cells[1][column["x-hist"]].rstrip("x"))
    if history >= 1:
        assert (sequence - 0.5) / (history + 0.5) - 0.05 <= ratio \
            <= (sequence + 0.5) / (history - 0.5) + 0.05, table
    # The exact softmax's floor: 6 x targets x items x dim FLOP an epoch, where a user with
    # n training items gives min(n - 1, max_len) next-item targets.
    _, cfg = compose_run([*PROTOCOL, *TOWERS["sequence, catalog softmax"], *overrides])
    data = select_training(load_prepared(cfg.data)[0], 1.0)
    n = np.bincount(data.train_user, minlength=data.n_users)
    targets = int(np.minimum(np.maximum(n - 1, 0), cfg.model.sequence_max_len).sum())
    floor = next(line for line in table.splitlines() if "exact softmax's products" in line)
    assert f"{targets} targets x {data.n_items} items x {cfg.model.embedding_dim} dims = " \
        f"{6 * targets * data.n_items * cfg.model.embedding_dim / 1e9:.3g} GFLOP" in floor, floor
    _, cfg = compose_run([*PROTOCOL, *TOWERS["history tower"], *overrides])
    paired = next(p for p in run(cfg).comparison
                  if p["baseline"] == "transitions" and p["metric"] == "test_ndcg_10")
    low, high = paired["interval"]
    assert row.endswith(f"{paired['difference']:+.4f} [{low:+.4f}, {high:+.4f}]"), row
