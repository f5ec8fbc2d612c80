"""Is `data.sample_fraction` a sound cheap rung? (`--mode fidelity`)

A few configurations of the default space train on nested samples of one Amazon-format file
with planted taste (the search benchmark's generator, >= 2M rows): each at every fraction,
on the same validation pairs and catalog. The table shows whether the small fractions rank the
configurations as the whole training pool does, and what a successive-halving scheme over
fractions (all at the smallest, the best half at the next, the best one at 1.0) costs and picks
compared with training every configuration on all of it."""

from __future__ import annotations

import time
from pathlib import Path

from experiments.benchmarks.common import TEST_100, VAL_100
from experiments.benchmarks.search import generated_amazon_file
from experiments.sweeping.study_table import format_params
from experiments.sweeping.trials import TrialRecord

FRACTIONS = (0.1, 0.3, 1.0)
# Four configurations of the default space, at batch >= 1024 to keep the run affordable.
CONFIGS: dict[str, list[str]] = {
    "adam 0.003 b1024 d32": ["optimizer=adam", "optimizer.learning_rate=0.003",
                             "train.batch_size=1024", "model.embedding_dim=32"],
    "adagrad 0.1 b8192 d32": ["optimizer=adagrad", "optimizer.learning_rate=0.1",
                              "train.batch_size=8192", "model.embedding_dim=32"],
    "adam 0.0005 b1024 d64": ["optimizer=adam", "optimizer.learning_rate=0.0005",
                              "train.batch_size=1024", "model.embedding_dim=64"],
    "adam 0.01 b2048 d16": ["optimizer=adam", "optimizer.learning_rate=0.01",
                            "train.batch_size=2048", "model.embedding_dim=16"],
}


def fidelity_table(rows: int, folder: Path, overrides: list[str], epochs: int = 4) -> str:
    from experiments.cli.compose import compose_run
    from recsys.cache import load_prepared
    from recsys.training import run

    path = generated_amazon_file(rows, folder)
    base = ["data=amazon_electronics", f"data.path={path}", "data.min_item_ratings=1",
            f"train.epochs={epochs}", "train.early_stopping_patience=2", "eval.baselines=[]",
            "eval.interval_resamples=0", *overrides]
    results: dict[tuple[str, float], tuple[float, float, float]] = {}
    prepared = None
    for name, config_overrides in CONFIGS.items():
        for fraction in FRACTIONS:
            _, config = compose_run([*base, *config_overrides,
                                     f"data.sample_fraction={fraction}"])
            if prepared is None:
                prepared, _ = load_prepared(config.data)
                epochs = config.train.epochs  # after the caller's overrides
            start = time.perf_counter()
            result = run(config, prepared=prepared)
            results[name, fraction] = (result.metrics[VAL_100],
                                       result.metrics[TEST_100],
                                       time.perf_counter() - start)
            print(f"fidelity: {name} at {fraction}: val {results[name, fraction][0]:.4f} "
                  f"({results[name, fraction][2]:.0f} s)", flush=True)
    names = list(CONFIGS)

    def ranking(fraction: float) -> list[str]:
        return sorted(names, key=lambda n: -results[n, fraction][0])

    full = ranking(1.0)
    lines = [f"fidelity: {rows:,}-row Amazon-format file with planted taste; "
             f"{epochs} epochs at most (patience 2); val / test top-100 and seconds",
             f"{'configuration':<26}" + "".join(f" {f'fraction {f}':>24}" for f in FRACTIONS)]
    for name in names:
        cells = "".join(f" {results[name, f][0]:.4f}/{results[name, f][1]:.4f} "
                        f"{results[name, f][2]:>6.0f}s" for f in FRACTIONS)
        lines.append(f"{name:<26}{cells}")
    for fraction in FRACTIONS[:-1]:
        order = ranking(fraction)
        agree = sum(a == b for a, b in zip(order, full, strict=True))
        lines.append(f"fraction {fraction}: ranking {' > '.join(str(full.index(n) + 1) for n in order)}"
                     f" (positions in the full-data ranking); same winner: "
                     f"{'yes' if order[0] == full[0] else 'no'}; {agree}/{len(names)} places agree")
    # Successive halving over fractions: all at the first, the best half at the next, ...
    alive, cost = names, 0.0
    for fraction in FRACTIONS:
        cost += sum(results[n, fraction][2] for n in alive)
        alive = sorted(alive, key=lambda n: -results[n, fraction][0])[:max(1, len(alive) // 2)]
    every = sum(results[n, 1.0][2] for n in names)
    lines.append(f"successive halving over fractions picks {alive[0]!r} "
                 f"(full data's best: {full[0]!r}) for {cost:.0f} s, against {every:.0f} s for "
                 f"every configuration on all data ({cost / every:.0%})")
    return "\n".join(lines)


def fidelity_study_table(rows: int, folder: Path, n_trials: int, overrides: list[str]) -> str:
    """The schedule as built (`--mode fidelity-study`): the default study twice on the same
    generated file, once with plain trials (search.fidelity.max_rungs=1: search.pruner per
    epoch) and once with the rungs the data size gives; same sampler seed and trial count.
    Does successive halving over data fractions find as good a winner, for how much time?"""
    import optuna

    from experiments.benchmarks.common import run_module, study_in

    path = generated_amazon_file(rows, folder)
    base = ["data=amazon_electronics", f"data.path={path}", "data.min_item_ratings=1",
            f"data.cache_dir={folder / 'cache'}", "train.epochs=4",
            "train.early_stopping_patience=2", "eval.baselines=[]",
            f"search.n_trials={n_trials}", *overrides]
    studies = {"plain trials (per-epoch pruner)": ["search.fidelity.max_rungs=1"],
               "successive halving over rungs": []}
    rows_out = []
    for label, extra in studies.items():
        name = "plain" if extra else "rungs"
        study_dir = folder / f"study-{name}"
        # A process of its own, as a user runs it (the commands are imported by nothing).
        seconds = run_module(["experiments.sweep", *base, *extra, f"search.dir={study_dir}",
                              f"search.study_name={name}"], folder / f"study-{name}.log")
        study = study_in(study_dir, name)
        states = [t.state for t in study.trials]
        best = study.best_trial
        rungs = max((len(TrialRecord.of(t).rungs) + 1 for t in study.trials), default=1)
        rows_out.append((label, rungs, states.count(optuna.trial.TrialState.COMPLETE),
                         states.count(optuna.trial.TrialState.PRUNED), best, seconds))
    (_, _, _, _, plain_best, plain_s), (_, _, _, _, rung_best, rung_s) = rows_out
    low = TrialRecord.of(plain_best).intervals[VAL_100][0]
    lines = [f"fidelity study: {rows:,}-row Amazon-format file with planted taste; default "
             f"space, {n_trials} trials, at most 4 epochs (patience 2) per run",
             f"{'study':<31} {'rungs':>5} {'complete':>8} {'pruned':>6} {'best val':>8} "
             f"{'its test':>8} {'wall s':>7}  best trial's parameters"]
    for label, rungs, complete, pruned, best, seconds in rows_out:
        lines.append(f"{label:<31} {rungs:>5} {complete:>8} {pruned:>6} {best.value:>8.4f} "
                     f"{TrialRecord.of(best).metrics[TEST_100]:>8.4f} {seconds:>7.0f}  "
                     + format_params(best.params))
    same = rung_best.params == plain_best.params
    lines.append(f"same best parameters: {'yes' if same else 'no'}; successive halving's best "
                 f"val {rung_best.value:.4f} is {'inside' if rung_best.value >= low else 'below'}"
                 f" the plain study's best's 95% interval (>= {low:.4f}); wall time "
                 f"{rung_s / plain_s:.0%} of the plain study's")
    return "\n".join(lines)
