"""Plain-text tables for the console."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    st = result.data_stats
    lines.append(f"data: {st['train']} train / {st['validation']} val / {st['test']} test pairs, "
                 f"{st['catalog_items']} catalog items, {st['train_users']} train users; "
                 f"held-out pairs of users unseen in training (ranked by popularity): "
                 f"{st['validation_unknown_users']} val / {st['test_unknown_users']} test")
    return "\n".join(lines)
