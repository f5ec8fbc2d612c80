"""Running a study: progress lines, stopping at n_trials in total, export and the final table."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from typing import Any

import optuna

from experiments.export import export_best
from experiments.objective import Objective, write_hparams_config
from experiments.report import write_report
from experiments.search_space import Param
from experiments.study import FINISHED, mask_url, open_storage, open_study
from recsys.errors import TrainingDiverged

EXIT_INTERRUPTED = 130
MAX_FAILURES_IN_A_ROW = 5


class Progress:
    """One line per finished trial, and a stop once n_trials are finished in total."""

    def __init__(self, n_trials: int, metric: str, start: float) -> None:
        self.n_trials, self.metric, self.start = n_trials, metric, start
        self.failures_in_a_row = 0

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        value = trial.value if trial.value is not None else trial.user_attrs.get("last_value")
        try:
            best = f"{study.best_value:.4f}"
        except ValueError:
            best = "-"
        shown = f"{value:.4f}" if isinstance(value, float) else "-"
        note = trial.user_attrs.get("reason", "")
        print(f"trial {trial.number:>3} {trial.state.name.lower():<8} {self.metric}={shown} "
              f"best={best} [{finished}/{self.n_trials}] {time.perf_counter() - self.start:6.0f}s "
              f"{_params(trial.params)}{'  (' + note + ')' if note else ''}", flush=True)
        if trial.state == optuna.trial.TrialState.FAIL:
            self.failures_in_a_row += 1
            if self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
                print(f"stopping: {self.failures_in_a_row} trials failed in a row", flush=True)
                study.stop()
        else:
            self.failures_in_a_row = 0
        if finished >= self.n_trials:
            study.stop()


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in params.items())


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_study(search: dict[str, Any], space: list[Param], base_overrides: list[str],
              study_dir: Path, ks: list[int], base_yaml: str, start: float) -> int:
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our progress line reports failures
    logging.getLogger("optuna").setLevel(logging.WARNING)
    storage = open_storage(search["storage"], search)
    study, done = open_study(storage, search, max_resource=_max_epochs(base_yaml))
    n_trials, metric = int(search["n_trials"]), search["metric"]
    where = f"study {search['study_name']!r} in {mask_url(search['storage'])}"
    if done:
        print(f"resuming {where}: {done} of {n_trials} trials already finished", flush=True)
    else:
        print(f"starting {where}: {n_trials} trials, metric {metric}", flush=True)
    if not study.get_trials(deepcopy=False):
        for params in search.get("enqueue_trials") or []:
            study.enqueue_trial(dict(params), skip_if_exists=True)
    study_dir.mkdir(parents=True, exist_ok=True)
    write_hparams_config(study_dir / "trials", space, ks)

    signal.signal(signal.SIGTERM, _raise_interrupt)
    if done < n_trials:
        try:
            study.optimize(
                Objective(space, base_overrides, study_dir, metric),
                n_trials=None, timeout=search.get("timeout"),
                callbacks=[Progress(n_trials, metric, start)],
                catch=(TrainingDiverged,), gc_after_trial=True,
            )
        except KeyboardInterrupt:
            finished = len(study.get_trials(deepcopy=False, states=FINISHED))
            print(f"interrupted after {finished} of {n_trials} finished trials; the running trial "
                  "was recorded as failed. Run the same command again to resume.", flush=True)
            return EXIT_INTERRUPTED

    best_dir = export_best(study, study_dir)
    report = write_report(study, study_dir / "report", metric)
    print(format_study_table(study, metric))
    if best_dir:
        print(f"best config: {best_dir / 'config.yaml'}  (re-run it with: python -m "
              f"experiments.train --config {best_dir / 'config.yaml'})")
    print(f"report: {report}  (plots beside it; recommend with: python -m "
          f"experiments.recommend {study_dir / 'best' / 'model'} <user id>)")
    print(f"study folder: {study_dir}  (TensorBoard: tensorboard --logdir {study_dir / 'trials'})")
    print(f"wall time: {time.perf_counter() - start:.0f} s")
    return 0


def _max_epochs(base_yaml: str) -> int:
    import yaml

    return int(yaml.safe_load(base_yaml)["train"]["epochs"])


def format_study_table(study: optuna.Study, metric: str, top: int = 5) -> str:
    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in optuna.trial.TrialState}
    complete = sorted((t for t in trials if t.state == optuna.trial.TrialState.COMPLETE),
                      key=lambda t: t.value, reverse=study.direction.name == "MAXIMIZE")
    test_metric = metric.replace("val_", "test_", 1)
    lines = [f"trials: {counts['complete']} complete, {counts['pruned']} pruned, "
             f"{counts['fail']} failed",
             f"{'trial':>5} {metric:>12} {test_metric:>13} {'state':>9} {'seconds':>8}  params"]
    for t in complete[:top]:
        m = t.user_attrs.get("metrics", {})
        lines.append(f"{t.number:>5} {t.value:>12.4f} {m.get(test_metric, float('nan')):>13.4f} "
                     f"{t.state.name.lower():>9} {t.user_attrs.get('seconds', 0):>8.1f}  "
                     f"{_params(t.params)}")
    if complete:
        pop = complete[0].user_attrs.get("popularity", {})
        lines.append(f"{'pop.':>5} {pop.get(metric, float('nan')):>12.4f} "
                     f"{pop.get(test_metric, float('nan')):>13.4f} {'baseline':>9} "
                     f"{'':>8}  most-rated training items")
    return "\n".join(lines)
