"""Confirming the winner: re-train the study's best trials with new seeds, pick by the mean.

The search ranks trials on one validation score each, and picks the luckiest: top trials often
differ by less than the score's own noise (see the `≈ best` marks). With `search.confirm.top_n`
> 0, after the study the best `top_n` complete trials are trained again `search.confirm.seeds`
times with other training seeds; `best/` is the trial with the best mean validation score, and
reports mean ± sd of validation and test. Results are kept in the study's user attributes
(`confirm`), so a rerun of the same command does not train them again.
"""

from __future__ import annotations

import copy
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from experiments.sweeping.folder import StudyFolder
from experiments.sweeping.search_config import ConfirmConfig
from experiments.sweeping.trials import TrialRecord, best_first, ranked
from recsys.metrics import reported_beside

if TYPE_CHECKING:
    from recsys.cache import HeldData

SEED_STEP = 1_000_003  # confirmation seed j of a trial: its own seed + j * SEED_STEP


def confirm_winners(study: optuna.Study, cfg: ConfirmConfig, metric: str, study_dir: Path,
                    data: HeldData | None = None) -> optuna.trial.FrozenTrial | None:
    """Train the best trials again, record every run, return the trial with the best mean
    validation score (None when the study has no complete trial). `data`: prepared data the
    process holds already."""
    from recsys.cache import HeldData
    from recsys.config import RunConfig
    from recsys.training import run

    data = data or HeldData()
    best = ranked(study)[:cfg.top_n]
    if not best:
        return None
    test_metric = reported_beside(metric)
    record: dict[str, Any] = dict(study.user_attrs.get("confirm", {}))
    for trial in best:
        key, stored = str(trial.number), TrialRecord.of(trial)
        done = record.get(key, {"seeds": [stored.config["train"]["seed"]],
                                "val": [trial.value],
                                "test": [stored.metrics[test_metric]]})
        while len(done["seeds"]) < cfg.seeds + 1:
            tree = copy.deepcopy(stored.config)
            seed = done["seeds"][0] + len(done["seeds"]) * SEED_STEP
            tree["train"]["seed"] = seed
            run_dir = StudyFolder(study_dir).trial(key) / f"confirm_seed_{seed}"
            config = RunConfig.from_dict(tree)
            result = run(config, run_dir, prepared=data.get(config.data))
            done = {"seeds": [*done["seeds"], seed], "val": [*done["val"], result.metrics[metric]],
                    "test": [*done["test"], result.metrics[test_metric]]}
            record[key] = done
            study.set_user_attr("confirm", record)  # kept after each run: a rerun resumes
            print(f"confirm trial {trial.number}: seed {seed} {metric}={result.metrics[metric]:.4f}"
                  f" {test_metric}={result.metrics[test_metric]:.4f}", flush=True)
    return confirmed_choice(study)


def confirmed_choice(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The confirmed trial with the best mean validation score (None before confirmation)."""
    record = study.user_attrs.get("confirm", {})
    if not record:
        return None
    pick = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
    number = pick(record, key=lambda key: statistics.fmean(record[key]["val"]))
    return study.trials[int(number)]


def summary(study: optuna.Study) -> dict[str, dict[str, float]]:
    """Per confirmed trial: runs, mean and sd of validation and test."""
    out = {}
    for key, done in study.user_attrs.get("confirm", {}).items():
        out[key] = {"runs": len(done["val"]),
                    "val_mean": statistics.fmean(done["val"]),
                    "val_sd": statistics.stdev(done["val"]) if len(done["val"]) > 1 else 0.0,
                    "test_mean": statistics.fmean(done["test"]),
                    "test_sd": statistics.stdev(done["test"]) if len(done["test"]) > 1 else 0.0}
    return out


def format_confirm_table(study: optuna.Study, chosen: int | None) -> str:
    rows = summary(study)
    lines = ["confirmation: each trial trained again with new seeds (mean ± sd over all runs)",
             f"{'trial':>5} {'runs':>5} {'val mean ± sd':>18} {'test mean ± sd':>18}"]
    for key, s in best_first(rows.items(), lambda kv: kv[1]["val_mean"], study):
        mark = "  <- best/" if chosen is not None and int(key) == chosen else ""
        lines.append(f"{key:>5} {s['runs']:>5} {s['val_mean']:>10.4f} ± {s['val_sd']:.4f} "
                     f"{s['test_mean']:>10.4f} ± {s['test_sd']:.4f}{mark}")
    return "\n".join(lines)
