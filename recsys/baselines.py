"""Simple strong baselines beside the two-tower model, on the same split and ranking rule.

- item-kNN: cosine similarity between items' training users; each item keeps its k most
  similar items; a user's score for an item sums its similarity to the user's items.
- EASE (Steck, 2019): a closed-form linear item-item model, B = I - P / diag(P) with
  P = (XᵀX + λI)⁻¹ and a zero diagonal.
Each is tuned on validation (k or λ from a small grid, by the run's selection metric) and
reported on test with that value. Both keep a dense item×item matrix, so they are skipped,
with the reason, above `eval.baseline_max_items`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from recsys.config import EvalConfig
from recsys.evaluation import HeldOut, Ranker, bootstrap_intervals
from recsys.files import write_text_atomic
from recsys.metrics import ranking_metrics

NAMES = {"popularity": "popularity", "itemknn": "item-kNN (cosine)", "ease": "EASE"}


@dataclass
class BaselineResult:
    name: str
    metrics: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, list[float]] = field(default_factory=dict)
    param: str = ""  # the grid value chosen on validation, e.g. "k=50"
    skipped: str = ""  # why it was not computed


def interaction_matrix(ranker: Ranker) -> sp.csr_matrix:
    """Binary users × items matrix of training pairs."""
    x = ranker.seen.copy()
    x.data[:] = 1.0
    return x


def itemknn_similarities(x: sp.csr_matrix, k: int) -> np.ndarray:
    """Dense item×item cosine similarities, each row keeping its k largest (no self)."""
    co = (x.T @ x).toarray().astype(np.float32)
    norms = np.sqrt(np.diag(co)).astype(np.float32)
    norms[norms == 0] = 1.0
    sim = co / norms[:, None] / norms[None, :]
    np.fill_diagonal(sim, 0.0)
    return keep_top(sim, k)


def keep_top(sim: np.ndarray, k: int) -> np.ndarray:
    """A copy of `sim` with each row's k largest entries kept, the rest zero."""
    sim = sim.copy()
    if k < sim.shape[1]:
        cut = np.argpartition(-sim, k - 1, axis=1)[:, k:]  # all but each row's k largest
        np.put_along_axis(sim, cut, 0.0, axis=1)
    return sim


def ease_weights(x: sp.csr_matrix, lam: float) -> np.ndarray:
    # float32: half the memory and time of float64 on a 10k-item catalog; λ >= 1 keeps the
    # system well conditioned enough for ranking.
    gram = (x.T @ x).toarray().astype(np.float32)
    gram[np.diag_indices_from(gram)] += lam
    p = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b.astype(np.float32)


def run_baselines(ranker: Ranker, val: HeldOut, test: HeldOut, ks: tuple[int, ...],
                  cfg: EvalConfig, monitor: str) -> dict[str, BaselineResult]:
    """Popularity (always) and `cfg.baselines`: val/test metrics and intervals, each
    baseline's k or λ chosen on `monitor` (the run's own selection metric, e.g. val_ndcg_10)
    from `cfg.knn_neighbors` / `cfg.ease_lambdas`."""
    names, max_items, resamples = cfg.baselines, cfg.baseline_max_items, cfg.interval_resamples
    knn_grid, ease_grid = cfg.knn_neighbors, cfg.ease_lambdas
    results = {"popularity": _finish("popularity", ranker.popularity_ranks(val),
                                     ranker.popularity_ranks(test), val, test, ks, resamples)}
    x = interaction_matrix(ranker)
    full: list[np.ndarray] = []  # item-kNN's similarities, computed once for every k

    def knn(k: int) -> np.ndarray:
        if not full:
            full.append(itemknn_similarities(x, ranker.n_items))
        return keep_top(full[0], k)

    grids: dict[str, list[tuple[str, Any]]] = {
        "itemknn": [(f"k={k}", lambda k=k: knn(k)) for k in knn_grid],
        "ease": [(f"lambda={lam:g}", lambda lam=lam: ease_weights(x, lam)) for lam in ease_grid],
    }
    for name in names:
        if name == "popularity":
            continue
        if ranker.n_items > max_items:
            results[name] = BaselineResult(
                NAMES[name], skipped=f"catalog of {ranker.n_items} items is above "
                f"eval.baseline_max_items={max_items} (a dense item x item matrix)")
            continue
        best: tuple[float, str, np.ndarray, np.ndarray] | None = None
        for label, build in grids[name]:
            weights = build()
            val_ranks = ranker.ranks(val, lambda users, w=weights: x[users] @ w)
            score = ranking_metrics(val_ranks, ks, "val_")[monitor]
            if best is None or score > best[0]:
                best = (score, label, weights, val_ranks)
        if best is None:  # an empty grid
            continue
        _, label, weights, val_ranks = best
        test_ranks = ranker.ranks(test, lambda users, w=weights: x[users] @ w)
        results[name] = _finish(name, val_ranks, test_ranks, val, test, ks, resamples, label)
    return results


def _finish(name: str, val_ranks: np.ndarray, test_ranks: np.ndarray, val: HeldOut,
            test: HeldOut, ks: tuple[int, ...], resamples: int, param: str = "") -> BaselineResult:
    return BaselineResult(
        NAMES[name],
        metrics={**ranking_metrics(val_ranks, ks, "val_"),
                 **ranking_metrics(test_ranks, ks, "test_")},
        intervals={**bootstrap_intervals(val_ranks, val.users, ks, "val_", resamples),
                   **bootstrap_intervals(test_ranks, test.users, ks, "test_", resamples)},
        param=param)


def cached_baselines(path: Path | None, compute: Callable[[], dict[str, BaselineResult]],
                     ) -> dict[str, BaselineResult]:
    """Baselines are computed once per prepared data set and evaluation setting: every trial
    of a study shares them."""
    if path is not None and path.is_file():
        try:
            stored = json.loads(path.read_text())
            return {name: BaselineResult(**fields) for name, fields in stored.items()}
        except (OSError, ValueError, TypeError):  # unreadable: compute again
            pass
    results = compute()
    if path is not None:
        with contextlib.suppress(OSError):  # a read-only cache costs time, not correctness
            write_text_atomic(path, json.dumps({n: asdict(r) for n, r in results.items()}))
    return results
