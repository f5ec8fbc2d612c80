"""A study in TensorBoard's HParams dashboard (`tensorboard --logdir <study>/trials`, or a
folder holding several studies): one session per trial, named `<study>/<trial>` so trials of
different studies never merge; its status (complete: success, failed or pruned: failure) and
a `state` hparam that tells pruned from failed; the selected epoch's validation and test
top-k as metrics; the baselines as runs of their own on the `val/top_k` charts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import tensorflow as tf
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from tensorboard.plugins.hparams import api as hp
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import summary as hparams_summary

from experiments.sweeping.space import Param
from recsys.tensorboard import BASELINES_DIR, write_baselines

STATES = ("complete", "pruned", "failed")
STATUS = {"complete": api_pb2.STATUS_SUCCESS, "pruned": api_pb2.STATUS_FAILURE,
          "failed": api_pb2.STATUS_FAILURE}


def hparam_value(value: Any) -> bool | int | float | str:
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def write_trial_hparams(run_dir: Path, study_name: str, number: int, chosen: dict[str, Any],
                        state: str) -> None:
    """The trial's session: its parameters and state (start), its status (end)."""
    values = {k: hparam_value(v) for k, v in chosen.items()}
    writer = tf.summary.create_file_writer(str(run_dir / "tensorboard"))
    with writer.as_default(step=0):
        hp.hparams({**values, "state": state}, trial_id=f"{study_name}/{number}")
        end = hparams_summary.session_end_pb(STATUS[state])
        tf.summary.experimental.write_raw_pb(end.SerializeToString(), step=0)
    writer.close()


def write_hparams_config(trials_dir: Path, space: list[Param], ks: list[int]) -> None:
    """The experiment summary: the hparams with their domains (integers stay integers) and
    the metrics the dashboard shows."""
    hparams, seen = [], set()
    for param in space:
        if param.distribution is None or param.key in seen:
            continue
        seen.add(param.key)
        hparams.append(hp.HParam(param.key, _domain(param.distribution)))
    hparams.append(hp.HParam("state", hp.Discrete(list(STATES))))
    metrics = [*(hp.Metric(f"selected/val_top_{k}", display_name=f"val top-{k}") for k in ks),
               hp.Metric(f"selected/test_top_{max(ks)}", display_name=f"test top-{max(ks)}"),
               *(hp.Metric(f"selected/{split}_ndcg_10", display_name=f"{split} ndcg@10")
                 for split in ("val", "test") if 10 in ks),
               *(hp.Metric(f"selected/{split}_mrr", display_name=f"{split} mrr")
                 for split in ("val", "test"))]
    writer = tf.summary.create_file_writer(str(trials_dir))
    with writer.as_default():
        hp.hparams_config(hparams=hparams, metrics=metrics)
    writer.close()


def _domain(dist: optuna.distributions.BaseDistribution) -> hp.Domain | None:
    if isinstance(dist, CategoricalDistribution):
        values = [hparam_value(c) for c in dist.choices]
        return hp.Discrete(values) if len({type(v) for v in values}) == 1 else None
    if isinstance(dist, IntDistribution):
        return hp.IntInterval(dist.low, dist.high)
    if isinstance(dist, FloatDistribution):
        return hp.RealInterval(float(dist.low), float(dist.high))
    return None


def write_study_baselines(trials_dir: Path, study: optuna.Study, ks: list[int],
                          max_epochs: int) -> None:
    """The baselines of the study (shared by every trial) as runs `baselines/<name>`, flat
    over the epochs, so they draw on the same charts as the trials' `val/top_k`."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        return
    baselines = complete[0].user_attrs.get("baselines") or {}
    metrics = {name: b.get("metrics", {}) for name, b in baselines.items()}
    epochs = max([int(t.user_attrs.get("epochs") or 1) for t in complete] + [1])
    write_baselines(trials_dir / BASELINES_DIR, metrics, tuple(ks),
                    list(range(1, min(epochs, max_epochs) + 1)))
