"""Is a win real? The model against each baseline on the same test pairs, paired by user.

The difference is the metric's difference as the tables report it (a mean over test pairs).
A user's pairs are not independent, so users are the units (an unknown user's pair is a unit
of its own, as in the intervals). One paired bootstrap gives both numbers of a verdict:
- a 95% interval of the difference: users resampled (Poisson weights) with their pairs, the
  two scorers together;
- its two-sided p-value: twice the share of resampled differences on the far side of zero
  (+1 smoothed), Holm-corrected across the baselines compared on the same metric.
So a p below 0.05 and an interval that excludes zero say the same thing (before Holm). A
signed-rank test would not: it drops the users with no difference (most of them at NDCG@10)
and tests the typical user, not the mean the tables show.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from recsys.metrics import Metric, per_pair_metrics

ALPHA = 0.05


@dataclass(frozen=True)
class Paired:
    baseline: str  # display name, e.g. "EASE"
    metric: str  # e.g. "test_top_100"
    model: float  # the model's value
    other: float  # the baseline's value
    difference: float  # model - baseline (per-user mean, averaged over users)
    interval: tuple[float, float]  # 95% paired bootstrap interval of the difference
    p_value: float  # the paired bootstrap's two-sided p
    p_holm: float  # Holm-corrected across the baselines compared on this metric
    users: int
    family: int = 1  # how many baselines the Holm correction covers
    resamples: int = 0  # of the bootstrap: its p cannot go below 2 / (resamples + 1)

    def verdict(self) -> str:
        """One line: `beats EASE at top_100: +0.0340, 95% [+0.0120, +0.0560], p=0.003 (...)`."""
        name = Metric.parse(self.metric).base
        lo, hi = self.interval
        excludes_zero = lo > 0 or hi < 0
        if self.p_holm < ALPHA and excludes_zero:
            word = "beats" if self.difference > 0 else "trails"
        elif excludes_zero:  # the interval alone would say otherwise: say what decided
            word = f"is not distinguishable, after Holm over {self.family} baselines, from"
        else:
            word = "is not distinguishable from"
        holm = f", Holm over {self.family} baselines" if self.family > 1 else ""
        # No resample crossed zero: the p-value is the bootstrap's floor, an upper bound.
        bound = "≤" if self.resamples and self.p_value <= 2 / (self.resamples + 1) else "="
        return (f"{word} {self.baseline} at {name}: {self.difference:+.4f}, 95% [{lo:+.4f}, "
                f"{hi:+.4f}], p{bound}{self.p_holm:.3g} (paired bootstrap{holm}; "
                f"{self.users} users)")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "interval": list(self.interval), "verdict": self.verdict()}


def units(users: np.ndarray) -> np.ndarray:
    """Each pair's unit: its user, or a unit of its own for an unknown user (index 0)."""
    unit = np.where(users > 0, users, -np.arange(1, len(users) + 1))
    return np.unique(unit, return_inverse=True)[1]


def paired_difference(model: np.ndarray, other: np.ndarray, users: np.ndarray,
                      resamples: int = 1000, seed: int = 0,
                      ) -> tuple[float, tuple[float, float], float, int]:
    """Per-pair values of two scorers on the same pairs: the mean difference, its 95% paired
    bootstrap interval over users, the same bootstrap's two-sided p-value, and the number of
    users."""
    diff = np.asarray(model, np.float64) - np.asarray(other, np.float64)
    return paired_differences(diff[:, None], users, resamples, seed)[0]


def paired_differences(diffs: np.ndarray, users: np.ndarray, resamples: int = 1000,
                       seed: int = 0) -> list[tuple[float, tuple[float, float], float, int]]:
    """`paired_difference` for each column of `diffs` (pairs x comparisons), all resampled
    with the same draws of user weights: drawing Poisson weights was most of the cost, and
    one draw per comparison gave these same weights each time (same seed, same users)."""
    diffs = np.asarray(diffs, np.float64)
    if len(diffs) == 0:
        return [(0.0, (0.0, 0.0), 1.0, 0)] * diffs.shape[1]
    unit = units(users)
    n_units = int(unit.max()) + 1
    pairs = np.bincount(unit, minlength=n_units).astype(np.float64)
    sums = np.stack([np.bincount(unit, weights=column, minlength=n_units)
                     for column in diffs.T], axis=1)  # units x comparisons
    rng = np.random.default_rng(seed)
    estimates = []
    chunk = max(1, min(resamples, 20_000_000 // n_units))
    for start in range(0, resamples, chunk):
        weights = rng.poisson(1.0, size=(min(chunk, resamples - start), n_units)).astype(float)
        estimates.append((weights @ sums) / np.maximum(weights @ pairs, 1.0)[:, None])
    resampled = np.concatenate(estimates)  # resamples x comparisons
    out = []
    for column, values in zip(diffs.T, resampled.T, strict=True):
        lo, hi = np.percentile(values, [2.5, 97.5])
        far_side = min(np.count_nonzero(values <= 0), np.count_nonzero(values >= 0))
        p = min(1.0, 2 * (far_side + 1) / (len(values) + 1))
        out.append((float(column.mean()), (float(lo), float(hi)), p, n_units))
    return out


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment (monotone, capped at 1)."""
    order = np.argsort(p_values)
    adjusted = np.empty(len(p_values))
    running = 0.0
    for i, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - i) * p_values[index]))
        adjusted[index] = running
    return adjusted.tolist()


def compare(model_ranks: np.ndarray, baseline_ranks: dict[str, np.ndarray], users: np.ndarray,
            ks: tuple[int, ...], metrics: list[Metric], resamples: int = 1000) -> list[Paired]:
    """The model against every baseline on each of `metrics` (on test: `metric.on("test")`),
    on the same test pairs; Holm across the baselines per metric."""
    model_values = per_pair_metrics(model_ranks, ks, "test")
    other_values = {name: per_pair_metrics(ranks, ks, "test")
                    for name, ranks in baseline_ranks.items()}
    tested = [m.on("test") for m in metrics]
    columns = [(metric, name) for metric in tested for name in other_values]
    differences = [model_values[m] - other_values[n][m] for m, n in columns]
    results = dict(zip(columns, paired_differences(np.stack(differences, axis=1), users,
                                                   resamples) if columns else [], strict=True))
    out: list[Paired] = []
    for metric in tested:
        rows = [(name, float(model_values[metric].mean()), float(values[metric].mean()),
                 *results[metric, name]) for name, values in other_values.items()]
        adjusted = holm([r[5] for r in rows]) if rows else []
        out += [Paired(name, metric.name, m, o, d, i, p, padj, n, len(rows), resamples)
                for (name, m, o, d, i, p, n), padj in zip(rows, adjusted, strict=True)]
    return out


def strongest_verdicts(paired: list[dict[str, Any]],
                       baselines: dict[str, dict[str, Any]]) -> list[str]:
    """One verdict line per compared metric, against the baseline strongest at that metric on
    validation (not on test): at top-100 that may be iALS and at NDCG@10 EASE, and a win over
    the one is no win over the other."""
    fields = {f for f in Paired.__dataclass_fields__}
    lines = []
    for metric in dict.fromkeys(row["metric"] for row in paired):
        on_validation = Metric.parse(metric).on("val").name
        scored = [(b.get("metrics", {}).get(on_validation), b.get("name", n))
                  for n, b in baselines.items()]
        scored = [(v, name) for v, name in scored if v is not None]
        if not scored:
            continue
        strongest = max(scored)[1]
        lines += [Paired(**{**{k: v for k, v in row.items() if k in fields},
                            "interval": tuple(row["interval"])}).verdict()
                  for row in paired if row["baseline"] == strongest and row["metric"] == metric]
    return lines
