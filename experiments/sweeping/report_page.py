"""report/index.html: one self-contained page per study (plotly.js inlined once, no network).

The study table with the baselines and intervals (summary.md's content), then the optimization
history (pruned trials at their last reported value), parameter importances, parallel
coordinates with one readable axis per config key, slices with decade ticks on log axes, and
the per-epoch curves with a legend; every axis that shows the objective is named after the
metric (e.g. `val_top_100`), not Optuna's "Objective Value".
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import Any

import optuna
import plotly.graph_objects as go
import plotly.io as pio

from experiments.sweeping.folder import StudyFolder
from experiments.sweeping.study_table import format_params, study_table
from experiments.sweeping.time_to_quality import (
    Clock,
    baseline_value,
    best_so_far,
    first_past,
    study_seconds,
)
from experiments.sweeping.trials import TrialRecord, complete_trials, ranked
from recsys.files import write_text_atomic
from recsys.metrics import reported_beside

PRUNED = optuna.trial.TrialState.PRUNED
COMPLETE = optuna.trial.TrialState.COMPLETE


def config_key(param: str) -> str:
    """`optimizer.learning_rate[optimizer=adam]` -> `optimizer.learning_rate`: one axis for a
    key searched under several conditions."""
    return param.split("[", 1)[0]


def short_name(param: str) -> str:
    """An axis title that fits a panel: `optimizer.learning_rate[optimizer=adam]` ->
    `learning_rate (adam)`, `train.batch_size` -> `batch_size`."""
    key, _, condition = param.partition("[")
    name = key.rsplit(".", 1)[-1]
    return f"{name} ({condition.rstrip(']').split('=', 1)[-1]})" if condition else name


def history_figure(study: optuna.Study, metric: str) -> go.Figure:
    fig = optuna.visualization.plot_optimization_history(study, target_name=metric)
    pruned = [(t.number, t.intermediate_values[max(t.intermediate_values)])
              for t in study.get_trials(deepcopy=False, states=(PRUNED,))
              if t.intermediate_values]
    if pruned:
        fig.add_trace(go.Scatter(x=[n for n, _ in pruned], y=[v for _, v in pruned],
                                 mode="markers", name="pruned (last reported value)",
                                 marker={"symbol": "x", "color": "#999"}))
    fig.update_layout(xaxis_title="trial", yaxis_title=metric,
                      title=f"{metric} of every trial, and the best so far")
    whole_ticks(fig, 0, max((t.number for t in study.get_trials(deepcopy=False)), default=0))
    return fig


def time_figure(study: optuna.Study, metric: str) -> go.Figure | None:
    """The best model in hand against wall-clock seconds (validation, and its test value),
    with EASE's validation value as a line: when did the study pass it?"""
    points = best_so_far(study, metric)
    if not points:
        return None
    xs = [p.seconds for p in points] + [study_seconds(study)]  # the last best held to the end
    fig = go.Figure()
    for name, ys in (("best so far (validation)", [p.val for p in points]),
                     ("its test value", [p.test for p in points])):
        fig.add_trace(go.Scatter(x=xs, y=[*ys, ys[-1]], mode="lines+markers", name=name,
                                 line={"shape": "hv"},
                                 text=[f"trial {p.trial}" for p in points] + [""]))
    test_metric = reported_beside(metric)
    ease = baseline_value(study, "ease", metric)
    if ease is not None:
        fig.add_hline(y=ease, line_dash="dash", line_color="#c00",
                      annotation_text=f"EASE {metric} {ease:.4f}")
    clock = Clock.of(study)
    for at_seconds, idle in clock.gap_marks() if clock else []:
        fig.add_vline(x=at_seconds, line_dash="dot", line_color="#888",
                      annotation_text=f"stopped; resumed {idle / 60:.0f} min later",
                      annotation_textangle=-90, annotation_position="top left")
    passed = first_past(points, ease)
    verdict = "" if ease is None else (f": passed EASE after {passed:.0f} s" if passed is not None
                                       else ": never passed EASE")
    fig.update_layout(xaxis_title="seconds the study ran (idle gaps left out)", yaxis_title=metric,
                      title=f"Time to quality: the best trial so far{verdict} "
                            f"(test value on {test_metric})")
    return fig


def whole_ticks(fig: go.Figure, first: int, last: int) -> None:
    """Integer x ticks (trial numbers, epochs): plotly's automatic ones fall on 0.5 steps."""
    fig.update_xaxes(tick0=first, dtick=max(1, math.ceil((last - first + 1) / 20)))


def parallel_figure(study: optuna.Study, metric: str) -> go.Figure | None:
    """One axis per config key (conditional parameters merged), log10 for log-scale ranges,
    categories as labelled ticks; complete trials coloured by the metric."""
    trials = complete_trials(study)
    if len(trials) < 2:
        return None
    columns: dict[str, list[Any]] = {}
    log_keys: set[str] = set()
    for t in trials:
        for name, dist in t.distributions.items():
            if getattr(dist, "log", False):
                log_keys.add(config_key(name))
    keys = sorted({config_key(n) for t in trials for n in t.params})
    for key in keys:
        columns[key] = [next((v for n, v in t.params.items() if config_key(n) == key), None)
                        for t in trials]
    dims = []
    for key, values in columns.items():
        present = [v for v in values if v is not None]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present) \
                and len(set(present)) > 1 and not _few_choices(study, key):
            use_log = key in log_keys
            shown = [math.log10(v) if use_log and v else v for v in present]
            low, high = min(shown), max(shown)
            ticks = [t for t in range(math.floor(low), math.ceil(high) + 1)] if use_log else None
            dims.append({"label": short_name(key), "values": [(math.log10(v) if use_log else v)
                                                  if v is not None else low for v in values],
                         # the axis spans its decades: a tick outside the range drew the
                         # axis past the plot's bottom, over the next section
                         **({"tickvals": ticks, "ticktext": [f"{10 ** t:g}" for t in ticks],
                             "range": [ticks[0], ticks[-1]]} if ticks else {})})
        else:
            labels = sorted({str(v) for v in present}, key=_natural)
            index = {label: i for i, label in enumerate(labels)}
            dims.append({"label": short_name(key), "values": [index.get(str(v), 0) for v in values],
                         "tickvals": list(range(len(labels))), "ticktext": labels})
    values = [t.value for t in trials]
    dims.append({"label": metric, "values": values})
    fig = go.Figure(go.Parcoords(line={"color": values, "colorscale": "Viridis",
                                       "showscale": True, "colorbar": {"title": metric}},
                                 dimensions=dims))
    # Tick labels of the lowest values sit below each axis: room for them inside the plot.
    fig.update_layout(title=f"Parallel coordinates ({len(trials)} complete trials)",
                      margin={"l": 80, "r": 80, "t": 100, "b": 60})
    return fig


def _few_choices(study: optuna.Study, key: str) -> bool:
    """A categorical parameter (choice of numbers) is drawn with its choices as ticks."""
    for t in study.get_trials(deepcopy=False):
        for name, dist in t.distributions.items():
            if config_key(name) == key:
                return isinstance(dist, optuna.distributions.CategoricalDistribution)
    return False


def _natural(text: str) -> tuple[Any, ...]:
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def slice_figure(study: optuna.Study, metric: str) -> go.Figure:
    fig = optuna.visualization.plot_slice(study, target_name=metric)
    # Plotly's default log ticks read "5 6 7 8 9 0.1 2 3": one labelled tick per decade.
    fig.update_xaxes(selector={"type": "log"}, dtick=1, exponentformat="none")
    # Optuna sizes the figure at 300 px a parameter (1800 px for six): fit the page instead,
    # with titles short enough for a panel.
    fig.update_layout(yaxis_title=metric, width=None, autosize=True)
    # The condition on a second line: `learning_rate (adagrad)` is wider than a panel at
    # 1000 px and ran into the next panel's title.
    fig.for_each_xaxis(lambda axis: axis.update(
        title_text=short_name(axis.title.text or "").replace(" (", "<br>(")))
    return fig


HIGHLIGHT = 5  # per-epoch curves drawn in colour: the best complete trials


def intermediate_figure(study: optuna.Study, metric: str) -> go.Figure:
    """Every trial's curve: the best few complete trials in colour with a legend, the rest
    thin and grey (hover names them), so twenty curves stay readable."""
    fig = optuna.visualization.plot_intermediate_values(study)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    best = [t.number for t in ranked(study)[:HIGHLIGHT]]
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    for trace in fig.data:
        number = re.search(r"\d+", str(trace.name or ""))
        trial = trials.get(int(number.group())) if number else None
        state = trial.state.name.lower() if trial else ""
        trace.name = f"trial {number.group() if number else '?'} ({state})"
        if trial is not None and trial.number in best:
            rank = best.index(trial.number)
            trace.update(line={"color": palette[rank], "width": 2.5},
                         marker={"color": palette[rank]}, legendrank=rank,
                         name=f"trial {trial.number} (best {rank + 1})")
        else:
            trace.update(line={"color": "#bbb", "width": 1}, marker={"color": "#bbb",
                                                                      "size": 4},
                         showlegend=False, opacity=0.7)
    others = len(fig.data) - len(best)
    fig.update_layout(showlegend=True, xaxis_title="epoch (or rung)", yaxis_title=metric,
                      title=f"Per-epoch {metric}: the best {len(best)} complete trials in "
                            f"colour, {others} others in grey (pruned ones end early)")
    steps = [s for t in study.get_trials(deepcopy=False) for s in t.intermediate_values]
    whole_ticks(fig, 1, max(steps, default=1))
    return fig


def importances_figure(study: optuna.Study, metric: str) -> go.Figure | None:
    complete = complete_trials(study)
    if len(complete) < 2 or not any(len({t.params.get(n) for t in complete}) > 1
                                    for n in complete[0].params):
        return None
    return optuna.visualization.plot_param_importances(study, target_name=metric)


def table_html(markdown: str, study_dir: Path) -> str:
    """The study table (Markdown rows) as an HTML table; trial numbers link to their folders."""
    out, rows = [], [line for line in markdown.splitlines() if line.startswith("|")]
    text = [line for line in markdown.splitlines() if line and not line.startswith("|")]
    for line in text[:1]:
        out.append(f"<p>{html.escape(line)}</p>")
    out.append('<div class="rows"><table>')
    for i, line in enumerate(rows):
        if set(line) <= set("|-"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        tag = "th" if i == 0 else "td"
        rendered = []
        for j, cell in enumerate(cells):
            value = html.escape(cell)
            if j == 0 and i > 0 and cell.isdigit() and StudyFolder(study_dir).trial(cell).is_dir():
                value = f'<a href="../trials/{cell}/">{value}</a>'
            if j == len(cells) - 1:
                value = breakable(value)
            rendered.append(f"<{tag}>{value}</{tag}>")
        out.append("<tr>" + "".join(rendered) + "</tr>")
    out.append("</table></div>")
    out += [f"<p>{html.escape(line)}</p>" for line in text[1:]]
    return "\n".join(out)


def breakable(params: str) -> str:
    """Escaped `name=value` parameters that may wrap after `=` as well as between parameters:
    `learning_rate[adam]=0.00312...` alone is wider than the column."""
    return params.replace("=", "=<wbr>")


def other_trials_html(study: optuna.Study, metric: str, study_dir: Path) -> str:
    """Pruned and failed trials, collapsed under a line that counts them: their last reported
    value, epochs and why they stopped."""
    S = optuna.trial.TrialState
    others = study.get_trials(deepcopy=False, states=(S.PRUNED, S.FAIL))
    if not others:
        return ""
    rows = []
    for t in sorted(others, key=lambda t: t.number):
        stored = TrialRecord.of(t)
        last = t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values \
            else None
        number = html.escape(str(t.number))
        if StudyFolder(study_dir).trial(t.number).is_dir():
            number = f'<a href="../trials/{number}/">{number}</a>'
        rows.append(f"<tr><td>{number}</td><td>{t.state.name.lower()}</td>"
                    f"<td>{'-' if last is None else f'{last:.4f}'}</td><td>{stored.epochs}</td>"
                    f"<td>{breakable(html.escape(format_params(t.params, compact=True)))}"
                    f"{' (' + html.escape(stored.reason) + ')' if stored.reason else ''}</td></tr>")
    pruned = sum(t.state == S.PRUNED for t in others)
    return (f'<details><summary>{pruned} pruned and {len(others) - pruned} failed trial(s), '
            "not ranked (their last reported value)</summary><div class=\"rows\"><table>"
            f"<tr><th>trial</th><th>state</th><th>last {html.escape(metric)}</th>"
            f"<th>epochs</th><th>params</th></tr>{''.join(rows)}</table></div></details>")


def paired_html(study: optuna.Study) -> str:
    """The best trial against the strongest baseline at each compared metric, on test,
    paired by user."""
    complete = complete_trials(study)
    if not complete:
        return ""
    best = study.best_trial
    verdicts = TrialRecord.of(best).verdicts()
    return "".join(f'<p class="paired">Paired test of trial {best.number}: the model '
                   f"{html.escape(v)}</p>" for v in verdicts)


# A table wider than the window says so above itself and names the columns out of view (a
# scrollbar alone is easy to miss, and hidden until touched where scrollbars overlay).
SCROLL_HINT = """
function hint() {
  for (const box of document.querySelectorAll('.rows')) {
    let note = box.previousElementSibling;
    if (!note || !note.classList.contains('more')) {
      note = document.createElement('p');
      note.className = 'more';
      box.before(note);
    }
    const edge = box.getBoundingClientRect().right;
    const hidden = [...box.querySelectorAll('tr:first-child > th')]
      .filter(th => th.getBoundingClientRect().right > edge + 1).map(th => th.textContent);
    note.textContent = hidden.length ? 'Wider than the window: scroll the table sideways '
      + '(the trial column stays) for ' + hidden.join(', ') + ' \u2192' : '';
    note.hidden = !hidden.length;
  }
}
hint();
window.addEventListener('resize', hint);
document.querySelectorAll('details').forEach(d => d.addEventListener('toggle', hint));
"""


def write_index(study: optuna.Study, report_dir: Path, metric: str, notes: list[str]) -> Path:
    """Write report/index.html and return its path."""
    study_dir = report_dir.parent
    figures: list[tuple[str, go.Figure | None]] = [
        ("Optimization history", history_figure(study, metric)),
        ("Time to quality", time_figure(study, metric)),
        ("Parameter importances", importances_figure(study, metric)),
        ("Parallel coordinates", parallel_figure(study, metric)),
        ("Slices", slice_figure(study, metric)),
        ("Per-epoch curves", intermediate_figure(study, metric)),
    ]
    parts, first = [], True
    for title, fig in figures:
        if fig is None:
            parts.append(f"<h2>{title}</h2><p>Not enough complete trials to draw it.</p>")
            continue
        fig.update_layout(height=480)
        # A plot wider than the page (Optuna sizes slices by parameter count) scrolls in
        # its own box, as the table does: the page itself never scrolls sideways.
        parts.append(f'<h2>{title}</h2><div class="wide">' + pio.to_html(
            fig, include_plotlyjs=first, full_html=False, config={"displaylogo": False})
            + "</div>")
        first = False
    best = '<a href="../best/">best/</a> (config.yaml, metrics.json, model/)' \
        if StudyFolder(study_dir).best.is_dir() else "no best/ yet"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Study {html.escape(study.study_name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 1400px; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 6px; text-align: right; white-space: nowrap; }}
th {{ white-space: normal; position: sticky; top: 0; background: #f4f4f4; }}
td:first-child, th:first-child {{ position: sticky; left: 0; background: #fff; }}
th:first-child {{ z-index: 1; background: #f4f4f4; }}
td:last-child, th:last-child {{ text-align: left; }}
td:last-child {{ min-width: 14em; white-space: normal; }}  /* breaks between parameters, and
                                                             after a long one's `=` */
.wide {{ overflow-x: auto; }}
/* A table wider than the window scrolls in a box no taller than the window, so its scrollbar
   is on screen; the bar is drawn always (overlay scrollbars hide until touched), and the trial
   number and the header stay in view while scrolling. */
.rows {{ overflow: auto; max-height: 85vh; }}
.rows::-webkit-scrollbar {{ width: 12px; height: 12px; background: #eee; }}
.rows::-webkit-scrollbar-thumb {{ background: #999; border-radius: 6px; }}
.more {{ color: #a50; font-weight: 600; }}
</style></head><body>
<h1>Study <code>{html.escape(study.study_name)}</code>: {html.escape(metric)}
({study.direction.name.lower()})</h1>
<p>Best trial's files: {best}. Each trial number links to its folder.</p>
{table_html(study_table(study, metric, None, markdown=True), study_dir)}
{other_trials_html(study, metric, study_dir)}
{paired_html(study)}
{"".join(f"<p>{html.escape(n)}</p>" for n in notes)}
{"".join(parts)}
<script>{SCROLL_HINT}</script>
</body></html>
"""
    path = report_dir / "index.html"
    write_text_atomic(path, page)  # a full disk leaves the old page, not half a new one
    return path
