"""`python -m experiments.benchmark --mode search`, tiny, end to end through the real commands."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_SYNTHETIC

from experiments.sweeping.plan import group_options
from experiments.sweeping.space import optuna_params, parse_space


@pytest.mark.slow
def test_search_mode_prints_every_method_for_every_data_set(tmp_path: Path) -> None:
    overrides = [f"data.cache_dir={tmp_path / 'cache'}", *TINY_SYNTHETIC,
                 "train.epochs=2", "train.eval_batch_size=1024"]
    # A second data set through --dataset, as a user would add one: the same generator, smaller.
    extra = "tiny: data.synthetic.n_users=600 data.synthetic.n_interactions=6000"
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.benchmark", "--mode", "search", "--trials", "2",
         "--generated-rows", "0", "--dataset", extra, "--split", "user_temporal", *overrides],
        cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for label in ("synthetic (embedded)", "tiny"):
        rows = {m: re.search(rf"^{re.escape(label)}\s+{m}\s+([\d.]+)\s+([\d.]+)", out, re.M)
                for m in ("popularity", "iALS", "notebook recipe", "fixed recipe",
                          "default study")}
        assert all(rows.values()), out
        scores = {m: (float(r.group(1)), float(r.group(2))) for m, r in rows.items()}
        assert all(0 < v <= 1 and 0 < t <= 1 for v, t in scores.values()), scores
        # The study enqueues the fixed recipe first, so its best validation score is at least
        # that recipe's (same data, same seed, same code path).
        assert scores["default study"][0] >= scores["fixed recipe"][0] - 1e-9, out
    study_line = re.search(r"^synthetic \(embedded\)\s+default study.*$", out, re.M).group(0)
    counts = re.search(r"(\d+)/(\d+)/(\d+)", study_line).groups()
    assert sum(map(int, counts[:2])) == 2  # complete + pruned = --trials
    assert "optimizer=" in study_line  # the best trial's parameters are shown
    assert re.search(r"^synthetic \(embedded\): study - fixed = [+-]\d", out, re.M)
    assert "search quality on val_top_100, data.split=user_temporal:" in out
    # The paired verdicts against the strongest baseline, on the metric and on NDCG@10.
    for k in ("top_100", "ndcg_10"):
        assert re.search(rf"^tiny: the default study (beats|trails|is not distinguishable from) "
                         rf".+ at {k}: [+-]\d\.\d{{4}}, 95% \[.+\], p[=≤]", out, re.M), out


def test_enqueued_config_keys_map_to_the_active_conditional_names() -> None:
    from experiments.cli.compose import compose_run

    space = parse_space(
        {"optimizer": "choice(adam, adagrad)"},
        {"optimizer=adam": {"optimizer.learning_rate": "tag(log, interval(0.0005, 0.02))"},
         "optimizer=adagrad": {"optimizer.learning_rate": "tag(log, interval(0.02, 1.0))"}},
        compose_run([])[0], group_options())
    names = [p.optuna_name for p in space]
    assert names == ["optimizer", "optimizer.learning_rate[optimizer=adam]",
                     "optimizer.learning_rate[optimizer=adagrad]"]
    assert optuna_params(space, {"optimizer": "adagrad", "optimizer.learning_rate": 0.1}) == {
        "optimizer": "adagrad", "optimizer.learning_rate[optimizer=adagrad]": 0.1}


@pytest.mark.slow
def test_pruning_mode_compares_epochs_against_the_unpruned_study(tmp_path: Path) -> None:
    overrides = [f"data.cache_dir={tmp_path / 'cache'}", *TINY_SYNTHETIC, "train.epochs=3",
                 "train.eval_batch_size=1024"]
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.benchmark", "--mode", "pruning", "--trials", "2",
         "--generated-rows", "0", "--pruners", "none,default", *overrides],
        cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = re.findall(r"^synthetic \(embedded\)\s+(none|default)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)%",
                      proc.stdout, re.M)
    assert [r[0] for r in rows] == ["none", "default"], proc.stdout
    none, default = rows
    assert none[2] == "0" and none[4] == "100"  # no pruner: nothing pruned, the reference
    assert int(none[1]) == 2 and int(none[3]) >= 2  # two complete trials of >= 1 epoch each


@pytest.mark.slow
def test_fidelity_study_mode_runs_the_study_with_and_without_rungs(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.benchmark", "--mode", "fidelity-study", "--rows",
         "20000", "--trials", "3", "search.fidelity.min_rung_pairs=1000",
         "search.enqueue_trials=[]", "train.eval_batch_size=1024"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    plain = re.search(r"^plain trials \(per-epoch pruner\)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)",
                      proc.stdout, re.M)
    rungs = re.search(r"^successive halving over rungs\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)",
                      proc.stdout, re.M)
    assert plain and rungs, proc.stdout
    assert plain.group(1) == "1" and int(rungs.group(1)) > 1
    for row in (plain, rungs):  # complete + pruned = --trials; a best value in (0, 1]
        assert int(row.group(2)) + int(row.group(3)) == 3 and 0 < float(row.group(4)) <= 1
    assert re.search(r"^same best parameters: (yes|no); .* wall time \d+% of the plain",
                     proc.stdout, re.M), proc.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--mode", "load", "--rows", "-5"], "--rows -5 is invalid: expected a positive integer"),
    (["--movielens", "/missing.csv"], "--movielens '/missing.csv' is not a file"),
    (["--dataset", "bad"], "--dataset 'bad' is invalid: expected 'LABEL: OVERRIDES'"),
    (["--metric", "val_bogus"], "--metric 'val_bogus' is invalid: expected one of val_top_1"),
    (["--mode", "pruning", "--pruners", "foo"], "--pruners foo is not known"),
    (["--mode", "knobs", "--variants", "nosuch"], "--variants nosuch is not known"),
    (["--mode", "knobs", "--variants", "history, dim 64;nosuch"], "--variants nosuch is not known"),
    (["--split", "by_day"], "--split 'by_day' is invalid: expected one of random, temporal"),
    (["--trials", "0"], "--trials 0 is invalid: expected a positive integer"),
])
def test_bad_benchmark_flags_are_one_line_before_anything_runs(args, message, capsys) -> None:
    from experiments import benchmark

    assert benchmark.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {message}"), err
