"""What a study leaves beside its storage: report/ (index.html, PNGs, summary.md, trials.csv)
and the clean-up of files an interrupted run left behind. best/ is written by export.py."""

from __future__ import annotations

import contextlib
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from experiments.sweeping.confirm import summary as confirm_summary
from experiments.sweeping.folder import StudyFolder
from experiments.sweeping.report_page import write_index
from experiments.sweeping.study_table import study_table
from experiments.sweeping.trials import TrialRecord, best_first, complete_trials, ranked
from recsys.files import atomic_path, write_text_atomic
from recsys.metrics import EVAL_SETS, KINDS, Metric


@dataclass(frozen=True)
class StudyOutputs:
    best: Path | None  # best/ (None: no complete trial)
    report: Path  # report/index.html
    tensorboard: str | None  # the address colouring the best trials (None: none complete)


def write_study_outputs(study: optuna.Study, study_dir: Path, metric: str,
                        chosen: optuna.trial.FrozenTrial | None) -> StudyOutputs:
    """Everything a study leaves beside its storage, written one way at the end of a sweep and
    by `experiments.report`: the baselines' TensorBoard runs, best/ (from `chosen`, the trial
    the sweep exported) and report/; returns them with the TensorBoard address of the best.
    OSError (a full disk) propagates: each file is whole or absent."""
    from experiments.sweeping.export import export_best
    from experiments.sweeping.hparams import best_runs_url, write_study_baselines

    folder = StudyFolder(study_dir)
    write_study_baselines(folder.trials, study, metric)
    best = export_best(study, study_dir, chosen)
    report = write_report(study, folder.report, metric)
    return StudyOutputs(best, report, best_runs_url(study, metric))


def tensorboard_line(study_dir: Path, address: str | None) -> str:
    """How to open the study's trials in TensorBoard, and the address that colours the best."""
    from experiments.cli.console import command
    from experiments.sweeping.hparams import PORT

    line = (f"TensorBoard: {command('tensorboard')} --logdir {StudyFolder(study_dir).trials} "
            f"--port {PORT}")
    if address is not None:
        line += f"; the best trials a colour each, the rest grey: {address}"
    return line


def png_figure(study: optuna.Study, name: str, metric: str) -> Any:
    """One of Optuna's matplotlib plots (`optimization_history`, `param_importances`,
    `intermediate_values`), its values named by the study's metric, not "Objective Value"."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as mpl_plots

    named = {"target_name": metric} if name != "intermediate_values" else {}
    ax = getattr(mpl_plots, f"plot_{name}")(study, **named)
    fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
    fig.set_size_inches(8, 5)
    fig.tight_layout()
    return fig


def write_report(study: optuna.Study, report_dir: Path, metric: str) -> Path:
    """Write index.html (the table and every plot the study's trials allow), PNGs of the
    history and importances, and summary.md; return index.html."""
    import matplotlib.pyplot as plt

    report_dir.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Importance estimates on few trials warn per parameter; the summary says how many there are.
    warnings.filterwarnings("ignore", message="Some regimes for parameter")
    # Optuna's matplotlib history of a study without values has no legend to draw.
    warnings.filterwarnings("ignore", message="No artists with labels found")
    complete = complete_trials(study)
    notes: list[str] = []
    enough_for_importances = len(complete) >= 2 and any(
        len({t.params.get(name) for t in complete}) > 1 for name in complete[0].params)
    if not enough_for_importances:
        notes.append("Not enough trials for importances: parameter importances need at "
                     "least two complete trials with different parameters.")
    pngs = ["optimization_history",
            "param_importances" if enough_for_importances else "intermediate_values"]
    for name in pngs:
        try:
            fig = png_figure(study, name, metric)
            with atomic_path(report_dir / f"{name}.png", ".png") as tmp:  # whole or absent
                fig.savefig(tmp, dpi=100)
            plt.close(fig)
        except (ValueError, RuntimeError) as exc:
            notes.append(f"{name}.png: not drawn ({exc}).")
    write_text_atomic(report_dir / "summary.md", summary_markdown(study, metric, notes))
    write_text_atomic(report_dir / "trials.csv", trials_frame(study, metric).to_csv(index=False))
    for old in ("optimization_history", "param_importances", "parallel_coordinate", "slice",
                "intermediate_values"):  # earlier versions' separate pages
        with contextlib.suppress(OSError):
            (report_dir / f"{old}.html").unlink()
    with contextlib.suppress(OSError):
        (report_dir / "plotly.min.js").unlink()
    return write_index(study, report_dir, metric, notes)


def trials_frame(study: optuna.Study, metric: str) -> Any:
    """Every trial as one row, to take elsewhere: Optuna's own columns (number, state, value,
    times, `params_<key>`), then what its record holds: every val_ and test_ metric (the
    study's `metric` first), epochs run, the best epoch, seconds and why it stopped."""
    frame = study.trials_dataframe(attrs=("number", "state", "value", "datetime_start",
                                          "datetime_complete", "duration", "params"),
                                   multi_index=False)
    if frame.empty:
        return frame
    records = [TrialRecord.of(t) for t in study.get_trials(deepcopy=False)]
    first = Metric.parse(metric)
    found = {m for r in records for m in r.metrics if Metric.of(m) is not None}
    for name in sorted(found, key=lambda m: metric_order(Metric.parse(m), first)):
        frame[name] = [r.metrics.get(name) for r in records]
    for name in ("epochs", "best_epoch", "seconds", "reason"):
        frame[name] = [getattr(r, name) for r in records]
    frame["duration"] = frame["duration"].dt.total_seconds()  # seconds, not "0 days 00:00:12"
    return frame


def metric_order(m: Metric, first: Metric) -> tuple[Any, ...]:
    """The study's metric, its test value, then val before test, by kind and cut-off."""
    return (m.base != first.base, EVAL_SETS.index(m.split), KINDS.index(m.kind), m.k or 0)


def summary_markdown(study: optuna.Study, metric: str, notes: list[str], top: int = 10) -> str:
    lines = [f"# Study `{study.study_name}`", "", study_table(study, metric, top, markdown=True)]
    leaders = ranked(study)
    evaluation = TrialRecord.of(leaders[0]).evaluation if leaders else None
    if evaluation:
        lines += ["", f"Ranking: {evaluation['candidates']}; items seen in training "
                  f"{'excluded' if evaluation['exclude_seen'] else 'kept'} "
                  f"(`eval.exclude_seen={str(evaluation['exclude_seen']).lower()}`); ties "
                  f"{evaluation['ties']}; intervals: {evaluation['intervals']}."]
    if leaders and (verdicts := TrialRecord.of(leaders[0]).verdicts()):
        lines += ["", f"Paired test of trial {leaders[0].number} on test: the model "
                  + "; the model ".join(verdicts) + "."]
    confirmed = confirm_summary(study)
    if confirmed:
        lines += ["", "## Confirmation: the best trials trained again with new seeds", "",
                  "| trial | runs | val mean ± sd | test mean ± sd |", "|---|---|---|---|"]
        lines += [f"| {key} | {c['runs']} | {c['val_mean']:.4f} ± {c['val_sd']:.4f} | "
                  f"{c['test_mean']:.4f} ± {c['test_sd']:.4f} |"
                  for key, c in best_first(confirmed.items(), lambda kv: kv[1]["val_mean"], study)]
        lines += ["", "`best/` is the confirmed trial with the best mean validation score."]
    lines += ["", *[f"- {note}" for note in notes]] if notes else []
    return "\n".join(lines) + "\n"


def remove_leftovers(study_dir: Path, older_than_s: float = 3600) -> int:
    """Temporary files and folders a killed process left in a study folder (a half-built
    best/, a trial's unfinished config or vectors). Only old ones: a live writer is fast."""
    now, removed = time.time(), 0
    for path in StudyFolder(study_dir).leftovers():
        try:
            if now - path.lstat().st_mtime < older_than_s:
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed += 1
        except OSError:
            continue
    return removed


class KeepBestVectors:
    """An Optuna callback: after each finished trial, delete `vectors.npz` of the complete
    trials outside the best `keep` (only those whose run folder is on this machine). The set
    of the best only ever gains members, so a deleted file is never needed again; best/ (and
    search.confirm's choice among the best) always finds its trial's vectors."""

    def __init__(self, keep: int) -> None:
        self.keep = keep

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        from recsys.serving import VECTORS_FILE  # TensorFlow: not at import (sweep's checks)

        for t in ranked(study)[self.keep:]:
            path = Path(TrialRecord.of(t).run_dir) / VECTORS_FILE
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
