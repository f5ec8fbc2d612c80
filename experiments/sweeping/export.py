"""Exporting a study's best trial into `<study>/best/`, atomically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf

from experiments.sweeping.confirm import summary as confirm_summary
from experiments.sweeping.folder import BestFolder, StudyFolder
from experiments.sweeping.study import FINISHED
from experiments.sweeping.trials import TrialRecord, complete_trials
from recsys.errors import UserError
from recsys.files import CONFIG_FILE, METRICS_FILE
from recsys.serving import VECTORS_FILE, export_saved_model

MAX_K = 100


EXPORTED_ATTR = "exported"  # the study's user attribute: which trial best/ holds


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    complete = complete_trials(study)
    if not complete:
        return None
    return study.best_trial


def record_export(study: optuna.Study, trial: optuna.trial.FrozenTrial | None) -> None:
    """Remember which trial the sweep chose for best/, and how many trials it had seen: a
    report rebuilds best/ from the same trial, whatever confirmation records or settings it
    would otherwise weigh."""
    if trial is None:
        return
    finished = len(study.get_trials(deepcopy=False, states=FINISHED))
    study.set_user_attr(EXPORTED_ATTR, {"trial": trial.number, "finished": finished})


def exported_choice(study: optuna.Study) -> tuple[optuna.trial.FrozenTrial | None, str]:
    """The trial the sweep last exported, while the study has no trials it did not see; else
    the best complete trial, with a note when an older confirmation is set aside."""
    trials = study.get_trials(deepcopy=False)
    finished = sum(t.state in FINISHED for t in trials)
    exported = study.user_attrs.get(EXPORTED_ATTR)
    if isinstance(exported, dict) and exported.get("finished") == finished:
        number = exported.get("trial")
        if isinstance(number, int) and 0 <= number < len(trials) and \
                trials[number].state == optuna.trial.TrialState.COMPLETE:
            return trials[number], ""
    best = best_trial(study)
    note = ("" if best is None or not study.user_attrs.get("confirm") else
            f"the study has trials its last confirmation did not see: best/ is trial "
            f"{best.number}, the best single run; run the sweep again to confirm it")
    return best, note


def export_best(study: optuna.Study, study_dir: Path,
                chosen: optuna.trial.FrozenTrial | None = None) -> Path | None:
    """Write best/config.yaml (loadable by experiments.train), params.json, metrics.json and
    model/ (a SavedModel that recommends from raw user ids; see recsys.serving).

    The model is built from the vectors the best trial kept, not retrained: they are that
    trial's exact weights, and retraining would cost a whole trial for the same numbers.

    The folder is built under a temporary name and swapped in with renames, so a crash leaves
    either the previous best/ or the new one, never half of one.
    """
    trial = chosen or best_trial(study)  # `chosen`: the confirmed winner
    if trial is None:
        return None
    stored = TrialRecord.of(trial)
    run_dir = Path(stored.run_dir)
    # On several machines the best trial may have run elsewhere: its run folder is not here,
    # but its config and metrics are in the storage (the model needs a re-run here).
    local = (run_dir / METRICS_FILE).is_file()
    if not local and not stored.config:
        return None
    target = StudyFolder(study_dir).best
    tmp = Path(tempfile.mkdtemp(prefix=".best.", dir=study_dir))
    new, old_best = BestFolder(tmp), BestFolder(target)
    try:
        tmp.chmod(study_dir.stat().st_mode & 0o777)  # mkdtemp's 0700: like the study folder
        # The storage's record, not the run folder's copy: a file edited or lost after the
        # trial ran would put another config beside this trial's parameters and metrics.
        new.config.write_text(
            OmegaConf.to_yaml(OmegaConf.create(stored.config)) if stored.config
            else (run_dir / CONFIG_FILE).read_text())
        new.params.write_text(json.dumps({
            "trial": trial.number, "params": trial.params,
            "overrides": stored.overrides, "worker": stored.worker, "run_dir": str(run_dir),
        }, indent=2))
        metrics = (_json_object(run_dir / METRICS_FILE) if local else None) or {
            "metrics": stored.metrics, "popularity": stored.popularity,
            "epoch": stored.best_epoch, "epochs_run": stored.epochs}
        metrics["trial"] = trial.number
        confirmed = confirm_summary(study).get(str(trial.number))
        if confirmed:  # mean ± sd over the trial and its re-runs with other seeds
            metrics["confirmation"] = confirmed
        metrics["study_trials_finished"] = len(study.get_trials(deepcopy=False, states=FINISHED))
        new.metrics.write_text(json.dumps(metrics, indent=2))
        if (run_dir / VECTORS_FILE).exists():
            try:
                export_saved_model(run_dir / VECTORS_FILE, new.model, max_k=MAX_K)
            except (OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:  # e.g. truncated
                raise UserError(f"{run_dir / VECTORS_FILE} cannot be read ({type(exc).__name__}"
                                f"): best/model is not rebuilt; re-run the best trial with "
                                f"--config {old_best.config}") from None
        elif _same_trial_model(target, trial.number):
            # The trial's vectors are gone (its folder moved or deleted): keep the model that
            # was exported from them, rather than leave best/ without one.
            shutil.copytree(old_best.model, new.model)
        old = study_dir / f".best.old.{os.getpid()}"
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _json_object(path: Path) -> dict[str, Any] | None:
    """A JSON file's object; None when it is unreadable or damaged (the storage has the
    trial's numbers too)."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _same_trial_model(best_dir: Path, number: int) -> bool:
    best = BestFolder(best_dir)
    params = _json_object(best.params) or {}
    return params.get("trial") == number and (best.model / "saved_model.pb").is_file()
