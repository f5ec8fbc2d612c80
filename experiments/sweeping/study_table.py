"""The study table: the best trials beside the baselines, one formatter for the console
(aligned text) and for report/summary.md (Markdown)."""

from __future__ import annotations

import textwrap
from typing import Any

import optuna

from experiments.sweeping.trials import TrialRecord, ranked
from recsys.metrics import Metric

KS = (1, 10, 100)
WIDTH = 120  # console columns
EXTRA = ("ndcg_10", "mrr")  # test NDCG@10 and MRR beside the top-k columns


def columns(metric: str) -> list[tuple[str, str]]:
    """(split, metric) of each number column: top-1/10/100 on validation and test, test
    NDCG@10 and MRR, and the study's own metric on both splits when it is none of these."""
    cols = [(split, f"top_{k}") for split in ("val", "test") for k in KS]
    cols += [("test", name) for name in EXTRA]
    own = Metric.parse(metric).base
    if ("val", own) not in cols:
        cols += [("val", own), *([("test", own)] if ("test", own) not in cols else [])]
    return cols


def heading(split: str, name: str) -> str:
    """`val@100` for top-k (the column most read), else `test ndcg@10`, `val mrr`."""
    metric = Metric.parse(f"{split}_{name}")
    return f"{split}@{metric.k}" if metric.kind == "top" else f"{split} {metric.label}"


def within_best(best_first: list[optuna.trial.FrozenTrial], metric: str) -> float | None:
    """The lower end of the best trial's 95% interval on the ranking metric (None without
    one): trials scoring at least this are within the best trial's noise."""
    span = TrialRecord.of(best_first[0]).intervals.get(metric) if best_first else None
    return span[0] if span else None


def format_params(params: dict[str, Any], digits: int = 4, compact: bool = False) -> str:
    """`key=value ...`; `compact`: each key's last part and its condition's value
    (`optimizer.learning_rate[optimizer=adam]` -> `learning_rate[adam]`), for tables."""
    def name(key: str) -> str:
        if not compact:
            return key
        base, _, condition = key.partition("[")
        short = base.rsplit(".", 1)[-1]
        return f"{short}[{condition.rstrip(']').split('=', 1)[-1]}]" if condition else short

    return " ".join(f"{name(k)}={v:.{digits}g}" if isinstance(v, float) else f"{name(k)}={v}"
                    for k, v in params.items())


def study_table(study: optuna.Study, metric: str, top: int | None = 5,
                markdown: bool = False) -> str:
    """Counts by state, the `top` complete trials (None: all), then each baseline, and the
    `≈ best` note."""
    trials = study.get_trials(deepcopy=False)
    counts = {s: sum(t.state == s for t in trials) for s in optuna.trial.TrialState}
    best_first = ranked(study)
    low = within_best(best_first, metric)
    # The console keeps to 120 columns: no top-1 there (summary.md and the report have it),
    # and each trial's parameters on a line of their own.
    cols = [c for c in columns(metric) if markdown or c[1] != "top_1" or c[1] == metric[4:]]
    head = ["trial", "state", *[heading(split, name) for split, name in cols],
            f"{metric} 95%", "seconds", "params"]
    rows: list[list[str]] = []

    def row(label: str, state: str, m: dict[str, float], bounds: dict[str, list[float]],
            seconds: str, params: str) -> list[str]:
        cells = [f"{m[f'{split}_{name}']:.4f}" if f"{split}_{name}" in m else "-"
                 for split, name in cols]
        span = bounds.get(metric)
        interval = f"[{span[0]:.4f}, {span[1]:.4f}]" if span else "-"
        return [label, state, *cells, interval, seconds, params]

    for t in best_first[:top]:
        state = "best" if t is best_first[0] else (
            "≈ best" if low is not None and t.value >= low else "complete")
        stored = TrialRecord.of(t)
        rows.append(row(str(t.number), state, stored.metrics, stored.intervals,
                        f"{stored.seconds:.1f}", format_params(t.params, compact=markdown)))
    if best_first:
        best = TrialRecord.of(best_first[0])
        baselines = best.baselines or {
            "popularity": {"name": "popularity", "metrics": best.popularity}}
        for b in baselines.values():
            what = b.get("skipped") or (f"tuned on validation: {b['param']}" if b.get("param")
                                        else "most-rated training items")
            rows.append(row(b["name"], "baseline", b.get("metrics", {}), b.get("intervals", {}),
                            "", what))
    S = optuna.trial.TrialState
    summary = (f"{counts[S.COMPLETE]} complete, {counts[S.PRUNED]} pruned, "
               f"{counts[S.FAIL]} failed; ranked on {metric} ({study.direction.name.lower()})")
    note = (f"≈ best: {metric} inside the best trial's 95% interval (>= {low:.4f}): not "
            "distinguishable from it on this validation set" if low is not None else "")
    if markdown:
        lines = [summary + ".", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                 *["| " + " | ".join(r) + " |" for r in rows]]
        return "\n".join([*lines, *(["", note + "."] if note else [])])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]
    lines = [f"trials: {summary}"]
    for n, r in enumerate([head, *rows]):
        lines.append("  ".join(c.rjust(w) if i > 1 else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r[:len(widths)], widths,
                                                              strict=True))).rstrip())
        if n and r[-1]:  # parameters, or what a baseline was tuned to: whole tokens
            lines.append(textwrap.fill(r[-1], WIDTH, initial_indent="    ",
                                       subsequent_indent="      ", break_long_words=False,
                                       break_on_hyphens=False))
    return "\n".join([*lines, *([textwrap.fill(note, WIDTH)] if note else [])])
