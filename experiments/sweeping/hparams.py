"""A study in TensorBoard (`tensorboard --logdir <study>/trials`, or a folder holding several
studies): each trial is the run `<trial number>` (its events beside its config.yaml) and the
HParams session `<study>/<trial>`, so trials of different studies never merge; its status
(complete: success, failed or pruned: failure) and a `state` hparam that tells pruned from
failed; integers shown as written (strings: the dashboard prints numbers as `32.000`); the
selected epoch's validation and test metrics (a pruned trial: its last reported value), the
study's metric first; the baselines as runs of their own on the `val/...` charts, once per
study."""

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
from experiments.sweeping.trials import TrialRecord
from recsys.events import BASELINES_DIR, write_baselines

STATES = ("complete", "pruned", "failed")
STATUS = {"complete": api_pb2.STATUS_SUCCESS, "pruned": api_pb2.STATUS_FAILURE,
          "failed": api_pb2.STATUS_FAILURE}


def hparam_value(value: Any) -> bool | float | str:
    """Integers as strings: TensorBoard's HParams UI shows every number with a fixed count of
    digits (`32.000`, `1024.0`), a string as written (`32`)."""
    if isinstance(value, bool | float | str):
        return value
    return str(value)


def write_trial_hparams(run_dir: Path, study_name: str, number: int, chosen: dict[str, Any],
                        state: str, last: tuple[int, dict[str, float]] | None = None) -> None:
    """The trial's session: its parameters and state (start), its status (end). `last`: a
    pruned trial's last reported step and values, written as its `selected/` metrics so that
    it is not blank in the dashboard's table and plots."""
    values = {k: hparam_value(v) for k, v in chosen.items()}
    writer = tf.summary.create_file_writer(str(run_dir))
    with writer.as_default(step=0):
        hp.hparams({**values, "state": state}, trial_id=f"{study_name}/{number}")
        if last is not None:
            step, metrics = last
            for key, value in metrics.items():
                tf.summary.scalar(f"selected/{key}", value, step=step)
        end = hparams_summary.session_end_pb(STATUS[state])
        tf.summary.experimental.write_raw_pb(end.SerializeToString(), step=0)
    writer.close()


def write_hparams_config(trials_dir: Path, space: list[Param], ks: list[int],
                         metric: str = "val_top_100") -> None:
    """The experiment summary: every searched parameter (one column per config key: a key
    searched under several conditions gets a domain that covers them all) and the metrics,
    the study's own first."""
    by_key: dict[str, list[optuna.distributions.BaseDistribution]] = {}
    for param in space:
        if param.distribution is not None:
            by_key.setdefault(param.key, []).append(param.distribution)
    hparams = [hp.HParam(key, _merged_domain(dists)) for key, dists in by_key.items()]
    hparams.append(hp.HParam("state", hp.Discrete(list(STATES))))
    metrics = [hp.Metric(f"selected/{metric}", display_name=metric),
               *(hp.Metric(f"selected/val_top_{k}", display_name=f"val top-{k}") for k in ks
                 if f"val_top_{k}" != metric),
               hp.Metric(f"selected/test_top_{max(ks)}", display_name=f"test top-{max(ks)}"),
               *(hp.Metric(f"selected/{split}_ndcg_10", display_name=f"{split} ndcg@10")
                 for split in ("val", "test") if 10 in ks and f"{split}_ndcg_10" != metric),
               *(hp.Metric(f"selected/{split}_mrr", display_name=f"{split} mrr")
                 for split in ("val", "test") if f"{split}_mrr" != metric)]
    writer = tf.summary.create_file_writer(str(trials_dir))
    with writer.as_default():
        hp.hparams_config(hparams=hparams, metrics=metrics)
    writer.close()


def _merged_domain(dists: list[optuna.distributions.BaseDistribution]) -> hp.Domain | None:
    """One domain for a key: the union of its conditions' choices or ranges."""
    if all(isinstance(d, FloatDistribution) for d in dists):
        return hp.RealInterval(float(min(d.low for d in dists)),
                               float(max(d.high for d in dists)))
    values: list[Any] = []
    for dist in dists:
        if isinstance(dist, CategoricalDistribution):
            values += [hparam_value(c) for c in dist.choices]
        elif isinstance(dist, IntDistribution):  # integers are strings (see hparam_value)
            values += [str(v) for v in range(dist.low, dist.high + 1, dist.step)][:1000]
        else:
            return None
    values = list(dict.fromkeys(values))
    return hp.Discrete(values) if values and len({type(v) for v in values}) == 1 else None


def write_study_baselines(trials_dir: Path, study: optuna.Study, ks: list[int],
                          max_epochs: int) -> None:
    """The baselines of the study (shared by every trial) as runs `baselines/<name>`, flat
    over the epochs, so they draw on the same charts as the trials' `val/top_k`."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        return
    baselines = TrialRecord.of(complete[0]).baselines
    metrics = {name: b.get("metrics", {}) for name, b in baselines.items()}
    epochs = max([TrialRecord.of(t).epochs or 1 for t in complete] + [1])
    write_baselines(trials_dir / BASELINES_DIR, metrics, tuple(ks),
                    list(range(1, min(epochs, max_epochs) + 1)))
