"""A study's report: Optuna plots (HTML + PNG) and a summary table.

    python -m experiments.report study=<name> [search.* overrides, e.g. search.storage=...]

Writes into <study folder>/report/: optimization_history, param_importances,
parallel_coordinate, slice and intermediate_values (pruning curves) as HTML (plotly.js is
written once beside them), PNG versions of the history and of the importances (or of the
pruning curves when importances cannot be computed), and summary.md.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from experiments.common import cli, compose_config, job_config
from experiments.confirm import summary as confirm_summary
from experiments.search_config import SearchConfig
from recsys.errors import UserError

HTML_PLOTS: dict[str, Callable[..., Any]] = {
    "optimization_history": optuna.visualization.plot_optimization_history,
    "param_importances": optuna.visualization.plot_param_importances,
    "parallel_coordinate": optuna.visualization.plot_parallel_coordinate,
    "slice": optuna.visualization.plot_slice,
    "intermediate_values": optuna.visualization.plot_intermediate_values,
}


def write_report(study: optuna.Study, report_dir: Path, metric: str) -> Path:
    """Write every plot that the study's trials allow, and summary.md; return summary.md."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as mpl_plots

    report_dir.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Importance estimates on few trials warn per parameter; the summary says how many there are.
    warnings.filterwarnings("ignore", message="Some regimes for parameter")
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    notes: list[str] = []
    enough_for_importances = len(complete) >= 2 and any(
        len({t.params.get(name) for t in complete}) > 1 for name in complete[0].params)
    for name, plot in HTML_PLOTS.items():
        if name == "param_importances" and not enough_for_importances:
            notes.append("Not enough trials for importances: parameter importances need at "
                         "least two complete trials with different parameters.")
            continue
        try:
            plot(study).write_html(report_dir / f"{name}.html", include_plotlyjs="directory")
        except (ValueError, RuntimeError) as exc:
            notes.append(f"{name}: not drawn ({exc}).")
    pngs = ["optimization_history",
            "param_importances" if enough_for_importances else "intermediate_values"]
    for name in pngs:
        try:
            ax = getattr(mpl_plots, f"plot_{name}")(study)
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.set_size_inches(8, 5)
            fig.tight_layout()
            fig.savefig(report_dir / f"{name}.png", dpi=100)
            plt.close(fig)
        except (ValueError, RuntimeError) as exc:
            notes.append(f"{name}.png: not drawn ({exc}).")
    summary = report_dir / "summary.md"
    summary.write_text(summary_markdown(study, metric, notes))
    return summary


def within_best(ranked: list[optuna.trial.FrozenTrial], metric: str) -> float | None:
    """The lower end of the best trial's 95% interval on the ranking metric (None without
    one): trials scoring at least this are within the best trial's noise."""
    span = ranked[0].user_attrs.get("intervals", {}).get(metric) if ranked else None
    return span[0] if span else None


def summary_markdown(study: optuna.Study, metric: str, notes: list[str], top: int = 10) -> str:
    trials = study.get_trials(deepcopy=False)
    states = {s: sum(t.state == s for t in trials) for s in optuna.trial.TrialState}
    ranked = sorted((t for t in trials if t.state == optuna.trial.TrialState.COMPLETE),
                    key=lambda t: t.value, reverse=study.direction.name == "MAXIMIZE")
    ks = (1, 10, 100)
    head = ["trial", "state", *[f"val top-{k}" for k in ks], *[f"test top-{k}" for k in ks],
            f"{metric} 95%", "seconds", "params"]
    lines = [f"# Study `{study.study_name}`", "",
             f"Ranked on `{metric}` ({study.direction.name.lower()}); "
             f"{states[optuna.trial.TrialState.COMPLETE]} complete, "
             f"{states[optuna.trial.TrialState.PRUNED]} pruned, "
             f"{states[optuna.trial.TrialState.FAIL]} failed.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(label: str, state: str, m: dict[str, float], bounds: dict[str, list[float]],
            seconds: str, params: str) -> str:
        cells = [f"{m[f'{split}_top_{k}']:.4f}" if f"{split}_top_{k}" in m else "-"
                 for split in ("val", "test") for k in ks]
        span = bounds.get(metric)
        interval = f"[{span[0]:.4f}, {span[1]:.4f}]" if span else "-"
        return "| " + " | ".join([label, state, *cells, interval, seconds, params]) + " |"

    low = within_best(ranked, metric)
    for t in ranked[:top]:
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in t.params.items())
        state = "best" if t is ranked[0] else (
            "complete ≈ best" if low is not None and t.value >= low else "complete")
        lines.append(row(str(t.number), state, t.user_attrs.get("metrics", {}),
                         t.user_attrs.get("intervals", {}),
                         f"{t.user_attrs.get('seconds', 0):.1f}", params))
    if ranked:
        best = ranked[0].user_attrs
        baselines = best.get("baselines") or {
            "popularity": {"name": "popularity", "metrics": best.get("popularity", {})}}
        for b in baselines.values():
            what = b.get("skipped") or (f"tuned on validation: {b['param']}" if b.get("param")
                                        else "most-rated training items")
            lines.append(row(b["name"], "baseline", b.get("metrics", {}), b.get("intervals", {}),
                             "", what))
        evaluation = best.get("evaluation")
        if evaluation:
            lines += ["", f"Ranking: {evaluation['candidates']}; items seen in training "
                      f"{'excluded' if evaluation['exclude_seen'] else 'kept'} "
                      f"(`eval.exclude_seen={str(evaluation['exclude_seen']).lower()}`); ties "
                      f"{evaluation['ties']}; intervals: {evaluation['intervals']}."]
        if low is not None:
            lines += ["", f"≈ best: the trial's {metric} lies inside the best trial's 95% interval "
                      f"(>= {low:.4f}): on this validation set it is not distinguishable from the "
                      "best."]
    confirmed = confirm_summary(study)
    if confirmed:
        lines += ["", "## Confirmation: the best trials trained again with new seeds", "",
                  "| trial | runs | val mean ± sd | test mean ± sd |", "|---|---|---|---|"]
        lines += [f"| {key} | {c['runs']} | {c['val_mean']:.4f} ± {c['val_sd']:.4f} | "
                  f"{c['test_mean']:.4f} ± {c['test_sd']:.4f} |"
                  for key, c in sorted(confirmed.items(), key=lambda kv: -kv[1]["val_mean"])]
        lines += ["", "`best/` is the confirmed trial with the best mean validation score."]
    lines += ["", *[f"- {note}" for note in notes]] if notes else []
    return "\n".join(lines) + "\n"


@cli
def main(argv: list[str]) -> int:
    argv = [f"search.study_name={a.split('=', 1)[1]}" if a.startswith("study=") else a
            for a in argv]
    search = SearchConfig.from_dict(job_config(compose_config("sweep", argv))["search"])
    from experiments.study import mask_url, open_storage, sqlite_file

    name = search.study_name
    missing = sqlite_file(search.storage)
    if missing is not None and not missing.is_file():  # report creates nothing
        folder = Path(search.dir).parent
        found = sorted(p.parent.name for p in folder.glob("*/study.db"))
        raise UserError(f"no study named {name!r}: {missing} does not exist; studies in "
                        f"{folder}: {', '.join(found) or 'none'} (or set search.storage)")
    storage = open_storage(search)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise UserError(f"no study named {name!r} in {mask_url(search.storage)}: available "
                        f"are {', '.join(names) or 'none'}") from None
    from experiments.confirm import confirmed_choice
    from experiments.export import export_best  # TensorFlow: after the checks above

    try:
        best = export_best(study, Path(search.dir), confirmed_choice(study))
        summary = write_report(study, Path(search.dir) / "report", search.metric)
    except OSError as exc:
        raise UserError(f"cannot write best/ and report/ into {search.dir!r}: "
                        f"{exc.strerror}; set search.dir to a writable study folder") from None
    if best:
        print(f"best: {best}  (config, metrics{', model' if (best / 'model').exists() else ''})")
    print(f"report: {summary.parent}  (start with {summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
