"""Exporting a study's best trial into `<study>/best/`, atomically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import optuna

from experiments.study import FINISHED


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        return None
    return study.best_trial


def export_best(study: optuna.Study, study_dir: Path) -> Path | None:
    """Write best/config.yaml (loadable by experiments.train), params.json and metrics.json.

    The folder is built under a temporary name and swapped in with renames, so a crash leaves
    either the previous best/ or the new one, never half of one.
    """
    trial = best_trial(study)
    if trial is None:
        return None
    run_dir = Path(trial.user_attrs["run_dir"])
    target = study_dir / "best"
    tmp = Path(tempfile.mkdtemp(prefix=".best.", dir=study_dir))
    try:
        shutil.copyfile(run_dir / "config.yaml", tmp / "config.yaml")
        (tmp / "params.json").write_text(json.dumps({
            "trial": trial.number, "params": trial.params,
            "overrides": trial.user_attrs.get("overrides", []),
        }, indent=2))
        metrics = json.loads((run_dir / "metrics.json").read_text())
        metrics["trial"] = trial.number
        metrics["study_trials_finished"] = len(study.get_trials(deepcopy=False, states=FINISHED))
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
        old = study_dir / f".best.old.{os.getpid()}"
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
