"""Plain-text tables for the console."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from recsys.metrics import Metric, every_metric, top
from recsys.significance import strongest_verdicts

if TYPE_CHECKING:
    from recsys.training import RunResult


def format_run_table(result: RunResult, monitor: str = "") -> str:
    """`monitor`: the selection metric (e.g. val_ndcg_10); the baseline table shows it."""
    parsed = [Metric.of(name) for name in result.metrics]
    ks = sorted(m.k for m in parsed if m and m.split == "val" and m.kind == "top")
    metrics = every_metric(ks)
    lines = [f"{'metric':<10} {'val model':>10} {'val pop':>10} {'test model':>11} {'test pop':>10}"]
    m, p = result.metrics, result.popularity
    for metric in metrics:
        val, test = metric.name, metric.on("test").name
        if val in m:
            lines.append(f"{metric.label:<10} {m[val]:>10.4f} "
                         f"{p.get(val, float('nan')):>10.4f} "
                         f"{m[test]:>11.4f} {p.get(test, float('nan')):>10.4f}")
    s = result.seconds
    lines.append(f"epochs: {result.epochs_run} (metrics from epoch {result.epoch}); "
                 f"seconds per epoch: {s['per_epoch_after_first']:.2f} after the first "
                 f"({s['per_epoch_mean']:.2f} mean incl. compilation); total {s['total']:.1f} s")
    selected = Metric.parse(monitor) if monitor else top(max(ks))
    for metric in dict.fromkeys([top(max(ks)), selected]):
        lines += baseline_table(result.metrics, result.intervals, result.baselines, metric,
                                f"two-tower, epoch {result.epoch}")
    lines += test_metrics_table(result.metrics, result.baselines, metrics,
                                f"two-tower, epoch {result.epoch}")
    lines += [f"paired test: the model {verdict}"
              for verdict in strongest_verdicts(result.comparison, result.baselines)]
    ev = result.evaluation
    lines.append(f"ranking: {ev['candidates']}, items seen in training "
                 f"{'excluded' if ev['exclude_seen'] else 'kept'} "
                 f"(eval.exclude_seen={str(ev['exclude_seen']).lower()}); ties {ev['ties']}; "
                 f"[intervals]: {ev['intervals']}")
    test_top = top(max(ks), "test")
    groups = ev.get("by_user", {})
    parts = [f"{name} users {g[test_top.name]:.4f} ({g['test_pairs']} pairs)"
             for name, g in groups.items() if test_top.name in g]
    if parts:
        lines.append(f"test {test_top.label} by user group: {'; '.join(parts)} (unknown users "
                     "are ranked by popularity)")
    st = result.data_stats
    lines.append(f"data: {st['train']} train / {st['validation']} val / {st['test']} test pairs, "
                 f"{st['catalog_items']} catalog items, {st['train_users']} train users; "
                 f"held-out pairs of users unseen in training (ranked by popularity): "
                 f"{st['validation_unknown_users']} val / {st['test_unknown_users']} test")
    return "\n".join(lines)


def baseline_table(metrics: dict[str, float], intervals: dict[str, list[float]],
                   baselines: dict[str, dict[str, Any]], metric: Metric, label: str,
                   ) -> list[str]:
    """The model beside every baseline on one metric, validation and test, with 95%
    intervals."""
    val, test = metric.on("val").name, metric.on("test").name

    def cell(values: dict[str, float], bounds: dict[str, list[float]], key: str) -> str:
        if key not in values:
            return f"{'-':>24}"
        low, high = bounds.get(key, [float("nan")] * 2)
        span = f" [{low:.4f}, {high:.4f}]" if key in bounds else ""
        return f"{values[key]:.4f}{span:>17}" if span else f"{values[key]:>24.4f}"

    rows = [f"{metric.label:<34} {'validation [95%]':>24} {'test [95%]':>24}",
            f"{label:<34} {cell(metrics, intervals, val)} {cell(metrics, intervals, test)}"]
    for b in baselines.values():
        title = f"{b['name']}{' (' + b['param'] + ')' if b.get('param') else ''}"
        if b.get("skipped"):
            rows.append(f"{title:<34} skipped: {b['skipped']}")
            continue
        rows.append(f"{title:<34} {cell(b['metrics'], b['intervals'], val)} "
                    f"{cell(b['metrics'], b['intervals'], test)}")
    return rows


def test_metrics_table(metrics: dict[str, float], baselines: dict[str, dict[str, Any]],
                       shown: list[Metric], label: str) -> list[str]:
    """Every test metric of the model and each baseline, one row each (intervals: metrics.json)."""
    shown = [m.on("test") for m in shown if m.on("test").name in metrics]
    rows = [f"{'test':<26}" + "".join(f"{m.label:>9}" for m in shown)]
    scorers = [(label, metrics)] + [(b["name"], b["metrics"]) for b in baselines.values()
                                    if not b.get("skipped")]
    for title, values in scorers:
        rows.append(f"{title[:26]:<26}" + "".join(
            f"{values[m.name]:>9.4f}" if m.name in values else f"{'-':>9}" for m in shown))
    return rows
