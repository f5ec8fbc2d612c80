"""Does pruning pay? The default search space, same seed, without and with the median pruner."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import optuna

from experiments import sweep


def run_study(folder: Path, pruner: str, n_trials: int, overrides: list[str]) -> optuna.Study:
    args = [*overrides, f"search.study_name=prune_{pruner}", f"search.dir={folder / pruner}",
            f"search.n_trials={n_trials}", f"search.pruner.name={pruner}"]
    with contextlib.redirect_stdout(io.StringIO()):
        code = sweep.main(args)
    if code != 0:
        raise RuntimeError(f"sweep with pruner={pruner} exited {code}")
    return optuna.load_study(study_name=f"prune_{pruner}",
                             storage=f"sqlite:///{folder / pruner / 'study.db'}")


def pruning_table(n_trials: int, overrides: list[str]) -> str:
    folder = Path(tempfile.mkdtemp(prefix="pruning.", dir="outputs"))
    lines = [f"pruning: default search space, {n_trials} trials each, sampler seed fixed",
             f"{'pruner':<8} {'complete':>8} {'pruned':>7} {'epochs':>7} {'best val top-100':>17}"]
    epochs = {}
    best = {}
    for pruner in ("none", "median"):
        study = run_study(folder, pruner, n_trials, overrides)
        trials = study.get_trials(deepcopy=False)
        epochs[pruner] = sum(int(t.user_attrs.get("epochs") or 0) for t in trials)
        best[pruner] = study.best_value
        states = [t.state for t in trials]
        lines.append(f"{pruner:<8} {states.count(optuna.trial.TrialState.COMPLETE):>8} "
                     f"{states.count(optuna.trial.TrialState.PRUNED):>7} {epochs[pruner]:>7} "
                     f"{best[pruner]:>17.4f}")
    lines.append(f"median pruner: {epochs['median'] / epochs['none']:.0%} of the epochs, best val "
                 f"top-100 {best['median'] - best['none']:+.4f}; studies in {folder}")
    return "\n".join(lines)
