"""How long item-kNN and EASE take, and whether the fast path chooses and scores as the old one.

Per data set, in one process and on one prepared split:
- old: a dense item×item similarity matrix cut to each k, and one float32 LU inverse of the
  whole catalog per λ (the path before the shared sparse Gram matrix);
- new: `recsys.baselines.run_baselines` (sparse Gram, sorted neighbours, λ tuned on the most
  rated items, one float32 Cholesky inverse at the chosen λ);
- float32 against float64 at the chosen λ: the share of validation pairs ranked identically,
  and the largest difference in validation top-100;
- iALS: its grid compared at eval.ials_iterations sweeps per fit (old) against
  eval.ials_tune_iterations sweeps and one refit of the chosen combination (new): the chosen
  values, seconds and test top-100 side by side.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import scipy.linalg

from experiments.benchmarks.common import TEST_10, TEST_100
from experiments.benchmarks.search import DataSet
from experiments.cli.compose import compose_run
from recsys.baselines import gram_matrix, interaction_matrix, run_baselines, tune_ials
from recsys.cache import load_prepared
from recsys.evaluation import HeldOut, Ranker
from recsys.metrics import ranking_metrics, top
from recsys.training import make_setup


def old_baselines(ranker: Ranker, val: HeldOut, test: HeldOut, ks: tuple[int, ...],
                  knn_grid: tuple[int, ...], lambdas: tuple[float, ...],
                  monitor: str) -> dict[str, tuple[str, float, float, float]]:
    """The path before: dense similarities cut per k, an LU inverse per λ. Name -> (chosen,
    test top-100, test top-10, seconds)."""
    x = interaction_matrix(ranker)
    out = {}
    start = time.perf_counter()
    co = (x.T @ x).toarray().astype(np.float32)
    norms = np.sqrt(np.diag(co))
    norms[norms == 0] = 1.0
    sim = co / norms[:, None] / norms[None, :]
    np.fill_diagonal(sim, 0.0)

    def knn(k: int) -> np.ndarray:
        kept = sim.copy()
        cut = np.argpartition(-kept, k - 1, axis=1)[:, k:]
        np.put_along_axis(kept, cut, 0.0, axis=1)
        return kept

    def ease(lam: float) -> np.ndarray:
        gram = co.copy()
        gram[np.diag_indices_from(gram)] += lam
        p = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
        b = -p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        return b

    for name, grid, make in (("item-kNN (cosine)", knn_grid, knn), ("EASE", lambdas, ease)):
        began = time.perf_counter() if name == "EASE" else start
        best = None
        for value in grid:
            w = make(value)
            score = ranking_metrics(ranker.ranks(val, lambda r, u, w=w: x[u] @ w), ks,
                                    "val")[monitor]
            if best is None or score > best[0]:
                best = (score, value, w)
        _, value, w = best
        test_metrics = ranking_metrics(ranker.ranks(test, lambda r, u, w=w: x[u] @ w), ks, "test")
        label = f"k={value}" if name.startswith("item") else f"lambda={value:g}"
        out[name] = (label, test_metrics[TEST_100], test_metrics[TEST_10],
                     time.perf_counter() - began)
    return out


def float_agreement(ranker: Ranker, val: HeldOut, lam: float) -> tuple[float, float]:
    """Share of validation pairs ranked identically by float32 and float64 EASE at λ, and
    the absolute difference of their validation top-100."""
    x = interaction_matrix(ranker)
    ranks = []
    for dtype in (np.float32, np.float64):
        potrf, potri = scipy.linalg.get_lapack_funcs(("potrf", "potri"), dtype=dtype)
        g = np.asfortranarray(gram_matrix(x).toarray(), dtype)
        g[np.diag_indices_from(g)] += lam
        c, _ = potrf(g, lower=1, overwrite_a=1, clean=0)
        p, _ = potri(c, lower=1, overwrite_c=1)
        p = np.tril(p)
        p += np.tril(p, -1).T
        b = -p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        ranks.append(ranker.ranks(val, lambda r, u, b=b: x[u] @ b))
    tops = [ranking_metrics(r, (100,), "val")[top(100).name] for r in ranks]
    return float(np.mean(ranks[0] == ranks[1])), abs(tops[0] - tops[1])


def baselines_table(data_sets: list[DataSet], overrides: list[str]) -> str:
    rows = ["data set                 items   path  item-kNN k  s      EASE λ (tuned on)          "
            "s      test@100 kNN/EASE  test@10 kNN/EASE",
            "-" * 118]
    notes, ials = [], ["iALS: grid at every sweep (old) vs grid at eval.ials_tune_iterations "
                       "and one full refit (new)",
                       "data set                 items   path  chosen                        "
                       "s      test@100", "-" * 80]
    for ds in data_sets:
        _, cfg = compose_run([*ds.overrides, *overrides])
        prepared, _ = load_prepared(cfg.data)
        setup = make_setup(cfg, prepared)
        args = (setup.ranker, setup.val, setup.test, setup.ks)
        monitor = cfg.train.monitor_metric
        old = old_baselines(*args, cfg.eval.knn_neighbors, cfg.eval.ease_lambdas, monitor)
        new = run_baselines(*args, replace(cfg.eval, interval_resamples=0), monitor)
        n = setup.data.n_items
        knn, ease = old["item-kNN (cosine)"], old["EASE"]
        rows.append(f"{ds.label:<22} {n:>7}   old   {knn[0]:<11} {knn[3]:<6.1f} {ease[0]:<26} "
                    f"{ease[3]:<6.1f} {knn[1]:.4f}/{ease[1]:.4f}    {knn[2]:.4f}/{ease[2]:.4f}")
        k, e = new["itemknn"], new["ease"]
        rows.append(f"{'':<22} {'':>7}   new   {k.param:<11} {sum(k.seconds.values()):<6.1f} "
                    f"{e.param.replace(' most-rated items', ''):<26} "
                    f"{sum(e.seconds.values()) - e.seconds['gram']:<6.1f} "
                    f"{k.metrics[TEST_100]:.4f}/{e.metrics[TEST_100]:.4f}    "
                    f"{k.metrics[TEST_10]:.4f}/{e.metrics[TEST_10]:.4f}")
        lam = float(e.param.split("=")[1].split()[0])
        same, diff = float_agreement(setup.ranker, setup.val, lam)
        quick = replace(cfg.eval, interval_resamples=0)
        for path, ev in (("old", replace(quick, ials_tune_iterations=quick.ials_iterations)),
                         ("new", quick)):
            r = tune_ials(setup.ranker, setup.ranker, interaction_matrix(setup.ranker),
                          setup.val, setup.test, setup.ks, ev, monitor)
            ials.append(f"{ds.label if path == 'old' else '':<22} "
                        f"{n if path == 'old' else '':>7}   {path}   {r.param:<29} "
                        f"{sum(r.seconds.values()):<6.1f} {r.metrics[TEST_100]:.4f}")
        notes.append(f"{ds.label}: EASE float32 vs float64 at lambda={lam:g}: {same:.2%} of "
                     f"validation pairs ranked identically, val top-100 differs by {diff:.4f}; "
                     f"new parts (s): kNN {k.seconds}, EASE {e.seconds}")
    return "\n".join(["baselines: old (dense kNN, LU inverse per lambda) vs new (sparse Gram, "
                      "lambda tuned on the most-rated items, one Cholesky inverse)", *rows, "",
                      *ials, "", *notes])
