"""Does pruning pay? The default study without a pruner and with each pruner setting compared,
same sampler seed, on each data set: epochs trained, wall time, the best trial's val/test
top-100, and time to quality: the test value of the best model in hand (chosen on validation)
after 1, 2, 5, 10 and 20 minutes, and when the study's best first passed EASE on validation."""

from __future__ import annotations

from pathlib import Path

import optuna

from experiments.benchmarks.common import TEST_100, VAL_100, run_module, study_in
from experiments.benchmarks.search import DataSet, slug
from experiments.sweeping.time_to_quality import MINUTES, at, baseline_value, best_so_far, first_past
from experiments.sweeping.trials import TrialRecord

# label -> search.pruner overrides; "default" is conf/search/default.yaml as it stands.
PRUNERS: dict[str, list[str]] = {
    "none": ["search.pruner.name=none"],
    "default": [],
    "median no warm-up": ["search.pruner.name=median", "search.pruner.n_warmup_steps=1",
                          "search.pruner.n_startup_trials=3"],
    "median warm-up 2": ["search.pruner.name=median", "search.pruner.n_warmup_steps=2"],
    "hyperband": ["search.pruner.name=hyperband"],
    "median (old default)": ["search.pruner.name=median", "search.pruner.n_warmup_steps=3",
                             "search.pruner.n_startup_trials=5"],
    "best_curve 0.9": ["search.pruner.name=best_curve", "search.pruner.ratio=0.9",
                       "search.pruner.n_warmup_steps=2"],
    "best_curve 0.95": ["search.pruner.name=best_curve", "search.pruner.ratio=0.95",
                        "search.pruner.n_warmup_steps=2"],
}


def study_epochs(folder: Path, label: str, args: list[str]) -> tuple[optuna.Study, int, float]:
    study_dir = folder / slug(label)
    folder.mkdir(parents=True, exist_ok=True)
    seconds = run_module(["experiments.sweep", *args, "search.study_name=pruning",
                          f"search.dir={study_dir}"], study_dir.with_suffix(".log"))
    study = study_in(study_dir, "pruning")
    epochs = sum(TrialRecord.of(t).epochs for t in study.get_trials(deepcopy=False))
    return study, epochs, seconds


def pruning_table(data_sets: list[DataSet], n_trials: int, overrides: list[str],
                  folder: Path, pruners: list[str] | None = None) -> str:
    S = optuna.trial.TrialState
    metric = VAL_100
    lines = [f"pruning: default search space, {n_trials} trials per study, same sampler seed",
             f"{'data':<22} {'pruner':<20} {'done':>4} {'cut':>4} {'epochs':>6} {'share':>6} "
             f"{'wall s':>6} {'best val':>8} {'its test':>8} {'>EASE s':>7}  test@100 in hand "
             f"at {', '.join(f'{m}' for m in MINUTES)} min"]
    for i, data in enumerate(data_sets):
        where = folder / f"{i}_{slug(data.label)}"
        unpruned = None
        for label in pruners or list(PRUNERS):
            study, epochs, seconds = study_epochs(where, label, [
                *data.overrides, *overrides, f"search.n_trials={n_trials}", *PRUNERS[label]])
            unpruned = unpruned or epochs
            states = [t.state for t in study.get_trials(deepcopy=False)]
            test = TrialRecord.of(study.best_trial).metrics[TEST_100]
            points = best_so_far(study, metric)
            passed = first_past(points, baseline_value(study, "ease", metric))
            held = [at(points, 60 * m) for m in MINUTES]
            lines.append(
                f"{data.label[:22]:<22} {label[:20]:<20} {states.count(S.COMPLETE):>4} "
                f"{states.count(S.PRUNED):>4} {epochs:>6} {epochs / unpruned:>6.0%} "
                f"{seconds:>6.0f} {study.best_value:>8.4f} {test:>8.4f} "
                f"{'never' if passed is None else f'{passed:.0f}':>7}  "
                + " ".join(f"{p.test:.4f}" if p else "  -   " for p in held))
    lines.append("share: epochs trained relative to the first row of each data set; wall s: "
                 "the whole sweep command; >EASE s: seconds from the first trial's start until "
                 "the best complete trial's validation value first passed EASE's")
    return "\n".join(lines)
