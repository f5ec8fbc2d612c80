"""Does pruning pay? The default study without a pruner and with each pruner setting compared,
same sampler seed, on each data set: epochs trained and the best trial's val/test top-100."""

from __future__ import annotations

from pathlib import Path

import optuna

from experiments.benchmarks.common import run_module, study_in
from experiments.benchmarks.search import DataSet, slug
from experiments.sweeping.trials import TrialRecord

# label -> search.pruner overrides; "default" is conf/search/default.yaml as it stands.
PRUNERS: dict[str, list[str]] = {
    "none": ["search.pruner.name=none"],
    "default": [],
    "median no warm-up": ["search.pruner.name=median", "search.pruner.n_warmup_steps=1",
                          "search.pruner.n_startup_trials=3"],
    "median warm-up 2": ["search.pruner.name=median", "search.pruner.n_warmup_steps=2"],
    "hyperband": ["search.pruner.name=hyperband"],
}


def study_epochs(folder: Path, label: str, args: list[str]) -> tuple[optuna.Study, int]:
    study_dir = folder / slug(label)
    folder.mkdir(parents=True, exist_ok=True)
    run_module(["experiments.sweep", *args, "search.study_name=pruning",
                f"search.dir={study_dir}"], study_dir.with_suffix(".log"))
    study = study_in(study_dir, "pruning")
    epochs = sum(TrialRecord.of(t).epochs for t in study.get_trials(deepcopy=False))
    return study, epochs


def pruning_table(data_sets: list[DataSet], n_trials: int, overrides: list[str],
                  folder: Path, pruners: list[str] | None = None) -> str:
    S = optuna.trial.TrialState
    lines = [f"pruning: default search space, {n_trials} trials per study, same sampler seed",
             f"{'data':<28} {'pruner':<20} {'complete':>8} {'pruned':>7} {'epochs':>7} "
             f"{'share':>6} {'best val':>9} {'its test':>9}"]
    for i, data in enumerate(data_sets):
        where = folder / f"{i}_{slug(data.label)}"
        unpruned = None
        for label in pruners or list(PRUNERS):
            study, epochs = study_epochs(where, label, [*data.overrides, *overrides,
                                                       f"search.n_trials={n_trials}",
                                                       *PRUNERS[label]])
            unpruned = unpruned or epochs
            states = [t.state for t in study.get_trials(deepcopy=False)]
            test = TrialRecord.of(study.best_trial).metrics["test_top_100"]
            lines.append(f"{data.label[:28]:<28} {label:<20} {states.count(S.COMPLETE):>8} "
                         f"{states.count(S.PRUNED):>7} {epochs:>7} {epochs / unpruned:>6.0%} "
                         f"{study.best_value:>9.4f} {test:>9.4f}")
    lines.append("share: epochs trained relative to the unpruned study (first row of each data set)")
    return "\n".join(lines)
