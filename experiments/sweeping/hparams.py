"""A study in TensorBoard (`tensorboard --logdir <study>/trials`, or a folder holding several
studies): each trial is the run `<trial number>` (its events beside its config.yaml) and the
HParams session `<study>/<trial>`, so trials of different studies never merge; its status
(complete: success, failed or pruned: failure) and a `state` hparam that tells pruned from
failed; integers shown as written (strings: the dashboard prints numbers as `32.000`); the
selected epoch's validation and test metrics (a pruned trial: its last reported value), the
study's metric first; the baselines as runs of their own on the `epoch/val_...` charts, once per
study."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

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
from experiments.sweeping.trials import TrialRecord, complete_trials, ranked
from recsys.events import BASELINES_DIR, write_baselines
from recsys.metrics import EVAL_SETS, Metric, reported_beside, top

STATES = ("complete", "pruned", "failed")
STATUS = {"complete": api_pb2.STATUS_SUCCESS, "pruned": api_pb2.STATUS_FAILURE,
          "failed": api_pb2.STATUS_FAILURE}


STATE = "State"  # complete, pruned or failed. The dashboard ticks the first five hparams by
# name (capitals sort before the lower-case config keys): the state is always among them, so
# pruned and complete trials never look alike; a key past the fifth is one tick away.


def hparam_value(value: Any, continuous: bool = False) -> bool | float | str:
    """A searched range's float as a number (the dashboard plots it on an axis); every other
    value, choices of numbers included, as written: the dashboard prints each number with a
    fixed count of digits (`32.000`, `0.25000`)."""
    if isinstance(value, bool) or (continuous and isinstance(value, float)):
        return value
    return format(value, "g") if isinstance(value, float) else str(value)


def session_name(study_name: str, number: int) -> str:
    """`<study>/<trial>`, the number zero-padded so that the dashboard's text sort is the
    numeric one (1, 2, ... 10, not 1, 10, 2)."""
    return f"{study_name}/{number:04d}"


def write_trial_hparams(run_dir: Path, study_name: str, number: int, chosen: dict[str, Any],
                        state: str, last: tuple[int, dict[str, float]] | None = None,
                        continuous: frozenset[str] = frozenset()) -> None:
    """The trial's session: its parameters and state (start), its status (end). `last`: a
    pruned trial's last reported step and values, written as its `selected/` metrics so that
    it is not blank in the dashboard's table and plots. `continuous`: the keys searched over
    a range (numbers); the others are written as text."""
    values = {k: hparam_value(v, k in continuous) for k, v in chosen.items()}
    writer = tf.summary.create_file_writer(str(run_dir))
    with writer.as_default(step=0):
        hp.hparams({**values, STATE: state}, trial_id=session_name(study_name, number))
        if last is not None:
            step, metrics = last
            for key, value in metrics.items():
                tf.summary.scalar(f"selected/{key}", value, step=step)
        end = hparams_summary.session_end_pb(STATUS[state])
        tf.summary.experimental.write_raw_pb(end.SerializeToString(), step=0)
    writer.close()


def write_hparams_config(trials_dir: Path, space: list[Param], ks: list[int],
                         metric: str = top(100).name) -> None:
    """The experiment summary: every searched parameter (one column per config key: a key
    searched under several conditions gets a domain that covers them all) and the metrics,
    the study's own first."""
    by_key: dict[str, list[optuna.distributions.BaseDistribution]] = {}
    for param in space:
        if param.distribution is not None:
            by_key.setdefault(param.key, []).append(param.distribution)
    hparams = [hp.HParam(key, _merged_domain(dists), display_name=label)
               for (key, dists), label in zip(by_key.items(), column_labels(list(by_key)),
                                              strict=True)]
    hparams.append(hp.HParam(STATE, hp.Discrete(list(STATES))))
    # One naming style: every metric is shown by its own name (val_top_100, test_ndcg_10).
    # The dashboard ticks the first five: the study's metric and its test value among them.
    names = [metric, reported_beside(metric), *(top(k).name for k in ks),
             top(max(ks), "test").name,
             *(Metric(split, "ndcg", 10).name for split in EVAL_SETS if 10 in ks),
             *(Metric(split, "mrr").name for split in EVAL_SETS)]
    metrics = [hp.Metric(f"selected/{name}", display_name=name)
               for name in dict.fromkeys(names)]
    # In the popularity baseline's run, which every study has: TensorBoard's HParams reads the
    # experiment from whichever run holds it, and in trials/ itself it was a run named `.`.
    writer = tf.summary.create_file_writer(str(experiment_run(trials_dir)))
    with writer.as_default():
        hp.hparams_config(hparams=hparams, metrics=metrics)
    writer.close()


def column_labels(keys: list[str]) -> list[str]:
    """Each key's last part (`learning_rate` for `optimizer.learning_rate`) where no other key
    ends the same: the dashboard's narrow columns broke `model.history_dropout` mid-word."""
    ends = [key.rsplit(".", 1)[-1] for key in keys]
    return [end if ends.count(end) == 1 else key for key, end in zip(keys, ends, strict=True)]


def experiment_run(trials_dir: Path) -> Path:
    """Where a study's HParams experiment summary is written."""
    return trials_dir / BASELINES_DIR / "popularity"


def _merged_domain(dists: list[optuna.distributions.BaseDistribution]) -> hp.Domain | None:
    """One domain for a key: the union of its conditions' choices or ranges."""
    if all(isinstance(d, FloatDistribution) for d in dists):
        return hp.RealInterval(float(min(d.low for d in dists)),
                               float(max(d.high for d in dists)))
    values: list[Any] = []
    for dist in dists:
        if isinstance(dist, CategoricalDistribution):
            values += [hparam_value(c) for c in dist.choices]  # text, as the sessions
        elif isinstance(dist, IntDistribution):  # integers are strings (see hparam_value)
            values += [str(v) for v in range(dist.low, dist.high + 1, dist.step)][:1000]
        else:
            return None
    values = list(dict.fromkeys(values))
    return hp.Discrete(values) if values and len({type(v) for v in values}) == 1 else None


def write_study_baselines(trials_dir: Path, study: optuna.Study, metric: str) -> None:
    """The baselines of the study (shared by every trial) as runs `baselines/<name>`, flat
    over the epochs the trials ran, so they draw on the same charts as the trials' curves."""
    complete = complete_trials(study)
    if not complete:
        return
    first = TrialRecord.of(complete[0])
    metrics = {name: b.get("metrics", {}) for name, b in first.baselines.items()}
    ks = first.config.get("train", {}).get("top_ks", [])
    epochs = max([TrialRecord.of(t).epochs or 1 for t in complete] + [1])
    write_baselines(trials_dir / BASELINES_DIR, metrics, tuple(ks), metric,
                    list(range(1, epochs + 1)))


COLOURS = 7  # TensorBoard's default run palette: an eighth run repeats the first colour
PORT = 6006  # TensorBoard's default; the printed command names it, so the address is right


def best_runs_url(study: optuna.Study, metric: str, port: int = PORT) -> str | None:
    """A TensorBoard address that colours the study's best complete trials and its strongest
    baseline (by validation), a colour each, and every other run grey: over every trial (29
    runs in a 20-trial study) its seven colours repeat and the best trials look alike. It is
    the dashboard's own "colour runs by regex" setting, carried in the address. None without
    a complete trial."""
    best = ranked(study)
    if not best:
        return None
    baselines = TrialRecord.of(best[0]).baselines
    strongest = max(baselines, key=lambda n: baselines[n].get("metrics", {}).get(metric, -1.0),
                    default=None)
    runs = [str(t.number) for t in best[:COLOURS - (strongest is not None)]]
    if strongest is not None:
        runs.append(f"{BASELINES_DIR}/{strongest}")
    # One group (one colour) per run, in rank order: the palette's first colours go to the best.
    regex = "^(" + "|".join(re.escape(r) for r in runs) + ")$"
    return f"http://localhost:{port}/?runColorGroup=regex:{quote(regex, safe='')}#timeseries"
