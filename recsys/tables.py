"""Plain-text tables for the console."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recsys.training import RunResult


def format_run_table(result: RunResult) -> str:
    ks = sorted(int(k.rsplit("_", 1)[1]) for k in result.metrics if k.startswith("val_top_"))
    lines = [f"{'metric':<10} {'val model':>10} {'val pop':>10} {'test model':>11} {'test pop':>10}"]
    for k in ks:
        m, p = result.metrics, result.popularity
        lines.append(f"{'top-' + str(k):<10} {m[f'val_top_{k}']:>10.4f} {p[f'val_top_{k}']:>10.4f} "
                     f"{m[f'test_top_{k}']:>11.4f} {p[f'test_top_{k}']:>10.4f}")
    s = result.seconds
    lines.append(f"epochs: {result.epochs_run} (metrics from epoch {result.epoch}); "
                 f"seconds per epoch: {s['per_epoch_after_first']:.2f} after the first "
                 f"({s['per_epoch_mean']:.2f} mean incl. compilation); total {s['total']:.1f} s")
    lines += baseline_table(result.metrics, result.intervals, result.baselines, max(ks),
                            f"two-tower, epoch {result.epoch}")
    ev = result.evaluation
    lines.append(f"ranking: {ev['candidates']}, items seen in training "
                 f"{'excluded' if ev['exclude_seen'] else 'kept'} "
                 f"(eval.exclude_seen={str(ev['exclude_seen']).lower()}); ties {ev['ties']}; "
                 f"[intervals]: {ev['intervals']}")
    k = max(ks)
    groups = ev.get("by_user", {})
    parts = [f"{name} users {g[f'test_top_{k}']:.4f} ({g['test_pairs']} pairs)"
             for name, g in groups.items() if f"test_top_{k}" in g]
    if parts:
        lines.append(f"test top-{k} by user group: {'; '.join(parts)} (unknown users are ranked "
                     "by popularity)")
    st = result.data_stats
    lines.append(f"data: {st['train']} train / {st['validation']} val / {st['test']} test pairs, "
                 f"{st['catalog_items']} catalog items, {st['train_users']} train users; "
                 f"held-out pairs of users unseen in training (ranked by popularity): "
                 f"{st['validation_unknown_users']} val / {st['test_unknown_users']} test")
    return "\n".join(lines)


def baseline_table(metrics: dict[str, float], intervals: dict[str, list[float]],
                   baselines: dict[str, dict[str, Any]], k: int, label: str) -> list[str]:
    """The model beside every baseline at top-k, validation and test, with 95% intervals."""
    def cell(values: dict[str, float], bounds: dict[str, list[float]], key: str) -> str:
        if key not in values:
            return f"{'-':>24}"
        low, high = bounds.get(key, [float("nan")] * 2)
        span = f" [{low:.4f}, {high:.4f}]" if key in bounds else ""
        return f"{values[key]:.4f}{span:>17}" if span else f"{values[key]:>24.4f}"

    rows = [f"{'top-' + str(k):<34} {'validation [95%]':>24} {'test [95%]':>24}",
            f"{label:<34} {cell(metrics, intervals, f'val_top_{k}')} "
            f"{cell(metrics, intervals, f'test_top_{k}')}"]
    for b in baselines.values():
        name = f"{b['name']}{' (' + b['param'] + ')' if b.get('param') else ''}"
        if b.get("skipped"):
            rows.append(f"{name:<34} skipped: {b['skipped']}")
            continue
        rows.append(f"{name:<34} {cell(b['metrics'], b['intervals'], f'val_top_{k}')} "
                    f"{cell(b['metrics'], b['intervals'], f'test_top_{k}')}")
    return rows
