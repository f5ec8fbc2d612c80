"""Simple strong baselines beside the two-tower model, on the same split and ranking rule.

- item-kNN: cosine similarity between items' training users; each item keeps its k most
  similar items; a user's score for an item sums its similarity to the user's items.
- EASE (Steck, 2019): a closed-form linear item-item model, B = I - P / diag(P) with
  P = (XᵀX + λI)⁻¹ and a zero diagonal.
- iALS (Hu et al. 2008; tuned as Rendle et al. 2022 advise): matrix factorization of the
  binary training matrix by `implicit`'s alternating least squares, its factors,
  regularization and alpha chosen on validation from a small grid.
- transitions: the one order-aware baseline. How often item j directly followed item i in
  the users' time-ordered training items (a first-order Markov chain, as FPMC's and SASRec's
  papers compare against), read from the user's latest items (the latest weighs 1, each
  earlier one half the one after it, over a window tuned on validation), plus `blend` x the
  items' cosine similarity (a fallback where a transition was never seen) and a vanishing
  popularity term that orders the rest.
Both start from one Gram matrix XᵀX, built once. item-kNN sorts each item's neighbours once
for the largest k and keeps sparse top-k rows for every k. EASE inverts by Cholesky (XᵀX + λI
is symmetric positive definite: half the work of an LU inverse) in float32, and tunes λ on the
`eval.ease_tune_items` most-rated items (a catalog that size costs (n/m)³ less per λ), then
solves the whole catalog once at the chosen λ. Each is tuned on validation by the run's
selection metric, each grid compared on one fixed draw of at most `eval.baseline_tune_pairs`
validation pairs, and reported on every validation and test pair with that value. item-kNN and
EASE keep a dense item×item matrix, so they are skipped, with the reason, above
`eval.baseline_max_items`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.linalg import lapack

from recsys.cache import DAMAGED
from recsys.config import BASELINE_NAMES, EvalConfig
from recsys.evaluation import HeldOut, Ranker, bootstrap_intervals, subsample
from recsys.files import atomic_path, write_text_atomic
from recsys.metrics import ranking_metrics

MIN_TUNING_PAIRS = 100  # fewer validation pairs among the most-rated items: tune on all items
Progress = Callable[[str], None]  # prints a progress line
# (ranker, users) -> the users' scores for every item, from the histories the ranker holds
# (training items; plus validation items for test under eval.test_history=train+validation)
Scores = Callable[[Ranker, np.ndarray], np.ndarray]


@dataclass
class BaselineResult:
    name: str
    metrics: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, list[float]] = field(default_factory=dict)
    param: str = ""  # the grid value chosen on validation, e.g. "k=50"
    skipped: str = ""  # why it was not computed
    seconds: dict[str, float] = field(default_factory=dict)  # per part: tune, final, rank
    # Each test pair's rank (the paired tests of recsys.significance); kept beside the JSON
    # cache in an .npz, never in metrics.json.
    test_ranks: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "test_ranks"}


def interaction_matrix(ranker: Ranker) -> sp.csr_matrix:
    """Binary users × items matrix of training pairs."""
    x = ranker.seen.copy()
    x.data[:] = 1.0
    return x


def gram_matrix(x: sp.csr_matrix) -> sp.csr_matrix:
    """XᵀX, sparse: co-occurrence counts (exact in float32 up to 2²⁴ users per item pair).
    item-kNN reads it sparse; EASE takes it dense."""
    # Left with the product's column order: no reader needs it sorted, and sorting the
    # nearly dense XᵀX of a popular catalog (136M entries at 18k items) cost more than the
    # product itself.
    return (x.T.tocsr() @ x).astype(np.float32, copy=False).tocsr()


def top_neighbours(gram: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Each item's k most cosine-similar other items (a sparse row each): items that share no
    user score 0 and are left out, as they add nothing to a user's score. Ties at the k-th
    value are broken by the lower item index. A row with no more than k neighbours is kept
    whole; longer rows are cut a block at a time in dense form (a partition, not a sort: on
    popular catalogs XᵀX is nearly dense, 136M of 316M entries on an 18k-item set, and
    sorting each row was most of item-kNN's time)."""
    n = gram.shape[0]
    norms = np.sqrt(gram.diagonal()).astype(np.float32)
    norms[norms == 0] = 1.0
    inverse = (1 / norms).astype(np.float32)
    pieces = []  # (rows, columns, cosines)
    lengths = np.diff(gram.indptr)
    short, long = np.flatnonzero(lengths <= k), np.flatnonzero(lengths > k)
    if len(short):
        part = gram[short].tocoo()
        pieces.append((short[part.row], part.col, part.data * inverse[short[part.row]]
                       * inverse[part.col]))
    block = max(1, 20_000_000 // max(n, 1))
    for start in range(0, len(long), block):
        rows = long[start:start + block]
        # cosine as the sparse product computes it: (XᵀX[i, j] / |i|) / |j| in float32
        sim = gram[rows].toarray() * inverse[rows, None] * inverse[None, :]
        sim[np.arange(len(rows)), rows] = 0.0
        r, c = np.nonzero(top_k_per_row(sim, k))
        pieces.append((rows[r], c, sim[r, c]))
    rows, cols, values = (np.concatenate(a) for a in zip(*pieces, strict=True)) if pieces \
        else (np.zeros(0, np.int64),) * 3
    keep = (rows != cols) & (values != 0)
    out = sp.csr_matrix((values[keep].astype(np.float32), (rows[keep], cols[keep])),
                        shape=(n, n))
    out.sort_indices()
    return out


def top_k_per_row(sim: np.ndarray, k: int) -> np.ndarray:
    """Mask of each row's k largest positive entries, ties at the k-th value to the lower
    column index."""
    if k >= sim.shape[1]:
        return sim > 0
    kth = np.partition(sim, sim.shape[1] - k, axis=1)[:, -k][:, None]  # k-th largest
    above, tied = sim > kth, sim == kth
    room = k - np.count_nonzero(above, axis=1)
    keep = above | tied
    over = np.flatnonzero(np.count_nonzero(tied, axis=1) > room)  # more ties than room
    if len(over):
        keep[over] = above[over] | (tied[over] & (np.cumsum(tied[over], axis=1)
                                                  <= room[over, None]))
    return keep & (sim > 0)


def itemknn_weights(neighbours: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """`neighbours` (top_neighbours for the largest k) cut to each row's k most similar."""
    indptr, data = neighbours.indptr, neighbours.data
    keep = np.zeros(len(data), bool)
    for row in range(neighbours.shape[0]):
        lo, hi = indptr[row], indptr[row + 1]
        keep[lo + np.argsort(-data[lo:hi], kind="stable")[:k]] = True
    return _rows_kept(neighbours, keep)


def _rows_kept(m: sp.csr_matrix, keep: np.ndarray) -> sp.csr_matrix:
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    return sp.csr_matrix((m.data[keep], (rows[keep], m.indices[keep])), shape=m.shape)


def ease_weights(gram: sp.csr_matrix | np.ndarray, lam: float) -> np.ndarray:
    """B = -P / diag(P) with a zero diagonal, P = (XᵀX + λI)⁻¹ by a float32 Cholesky inverse
    (LAPACK potrf + potri); an LU inverse in float64 when the factorization fails. float32
    ranks the benchmark's validation pairs as float64 does (experiments/benchmarks)."""
    a = np.asfortranarray(gram.toarray() if sp.issparse(gram) else gram, np.float32)
    a[np.diag_indices_from(a)] += lam
    c, info = lapack.spotrf(a, lower=1, overwrite_a=1, clean=0)
    if info == 0:
        p, info = lapack.spotri(c, lower=1, overwrite_c=1)
    if info != 0:  # not positive definite in float32: the exact route
        g = (gram.toarray() if sp.issparse(gram) else np.asarray(gram)).astype(np.float64)
        g[np.diag_indices_from(g)] += lam
        p = scipy.linalg.inv(g, overwrite_a=True, check_finite=False).astype(np.float32)
    else:
        p = np.tril(p)
        p += np.tril(p, -1).T  # potri fills the lower triangle only
    diag = np.diag(p).copy()
    p /= -diag[None, :]
    np.fill_diagonal(p, 0.0)
    return p


def run_baselines(ranker: Ranker, val: HeldOut, test: HeldOut, ks: tuple[int, ...],
                  cfg: EvalConfig, monitor: str, progress: Progress | None = None,
                  test_ranker: Ranker | None = None) -> dict[str, BaselineResult]:
    """Popularity (always) and `cfg.baselines`: val/test metrics and intervals, each
    baseline's k or λ chosen on `monitor` (the run's own selection metric, e.g. val_ndcg_10)
    from `cfg.knn_neighbors` / `cfg.ease_lambdas`. `progress(text)`: a line per baseline done.
    Everything is fitted on `ranker`'s (training) pairs; test pairs are ranked from
    `test_ranker`'s histories (default: the same)."""
    say = progress or (lambda text: None)
    tested = test_ranker or ranker
    results = {"popularity": _finish("popularity", ranker.popularity_ranks(val),
                                     tested.popularity_ranks(test), val, test, ks,
                                     cfg.interval_resamples)}
    x = interaction_matrix(ranker)
    gram, gram_seconds = None, 0.0
    for name in [n for n in cfg.baselines if n != "popularity"]:
        if skipped := skip_reason(name, ranker, x, cfg):
            results[name] = BaselineResult(BASELINE_NAMES[name], skipped=skipped)
            continue
        if name != "ials" and gram is None:  # item-kNN and EASE share one Gram matrix
            start = time.perf_counter()
            gram = gram_matrix(x)
            gram_seconds = time.perf_counter() - start
        began = time.perf_counter()
        if name == "ials":
            result = tune_ials(ranker, tested, x, val, test, ks, cfg, monitor)
        else:
            tune = {"itemknn": tune_itemknn, "ease": tune_ease,
                    "transitions": tune_transitions}[name]
            result = tune(ranker, tested, gram, val, test, ks, cfg, monitor)
            result.seconds = {"gram": round(gram_seconds, 2), **result.seconds}
        results[name] = result
        say(f"  {result.name}: {result.param} chosen on {monitor}, "
            f"{time.perf_counter() - began:.1f} s")
    return results


def skip_reason(name: str, ranker: Ranker, x: sp.csr_matrix, cfg: EvalConfig) -> str:
    """Why a baseline is not computed here ("" when it is)."""
    if name == "ials":
        if x.nnz > cfg.ials_max_pairs:
            return (f"{x.nnz:,} training pairs are above eval.ials_max_pairs="
                    f"{cfg.ials_max_pairs:,} (its fits would take longer than the study)")
        return ""
    if ranker.n_items > cfg.baseline_max_items:
        return (f"catalog of {ranker.n_items} items is above eval.baseline_max_items="
                f"{cfg.baseline_max_items} (a dense item x item matrix)")
    return ""


def tune_ials(ranker: Ranker, tested: Ranker, x: sp.csr_matrix, val: HeldOut, test: HeldOut,
              ks: tuple[int, ...], cfg: EvalConfig, monitor: str) -> BaselineResult:
    """iALS (`implicit`'s AlternatingLeastSquares on the binary training matrix): every
    combination of the factors, regularization and alpha grids is fitted with
    `cfg.ials_tune_iterations` sweeps and compared on validation, then the best is fitted
    again with `cfg.ials_iterations` and reported; scored by the same ranker (its user and
    item factors, all items). Why fewer sweeps for the grid: ALS orders the combinations
    after a few sweeps as it does after fifteen, and the grid was 95% of iALS's time. Its
    user factors are the training pairs' (a test history's validation items do not move
    them)."""
    start = time.perf_counter()
    grid = [(f, r, a) for f in cfg.ials_factors for r in cfg.ials_regularization
            for a in cfg.ials_alpha]
    label, scores, val_ranks = choose(ranker, val, ks, monitor, (
        (ials_label(*combo), ials_scores(x, *combo, cfg.ials_tune_iterations))
        for combo in grid), cfg.baseline_tune_pairs)
    if cfg.ials_tune_iterations < cfg.ials_iterations:
        combo = grid[[ials_label(*c) for c in grid].index(label)]
        scores, val_ranks = ials_scores(x, *combo, cfg.ials_iterations), None
    return reported("ials", ranker, tested, label, scores, val_ranks, val, test, ks, cfg,
                    start)


def ials_label(factors: int, reg: float, alpha: float) -> str:
    return f"factors={factors} reg={reg:g} alpha={alpha:g}"


def ials_scores(x: sp.csr_matrix, factors: int, reg: float, alpha: float,
                iterations: int) -> Scores:
    """Fit iALS on the training matrix; the scores of users (their factors · every item's)."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    # implicit's own threads do the work; BLAS threads beside them contend
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=factors, regularization=reg, alpha=alpha,
                                        iterations=iterations, random_state=0)
        model.fit(x, show_progress=False)
    users, items = model.user_factors, model.item_factors
    return lambda r, u: users[u] @ items.T


def tune_itemknn(ranker: Ranker, tested: Ranker, gram: sp.csr_matrix, val: HeldOut,
                 test: HeldOut, ks: tuple[int, ...], cfg: EvalConfig,
                 monitor: str) -> BaselineResult:
    start = time.perf_counter()
    neighbours = top_neighbours(gram, max(cfg.knn_neighbors))

    def candidates() -> Iterator[tuple[str, Scores]]:
        for k in cfg.knn_neighbors:
            weights = itemknn_weights(neighbours, k)
            yield f"k={k}", lambda r, u, w=weights: (r.seen[u] @ w).toarray()

    return reported("itemknn", ranker, tested,
                    *choose(ranker, val, ks, monitor, candidates(), cfg.baseline_tune_pairs),
                    val, test, ks, cfg, start)


def transition_counts(ranker: Ranker) -> sp.csr_matrix:
    """[i, j]: how often item j directly followed item i in a user's training items."""
    before, after = ranker.sequences.transitions()
    counts = sp.csr_matrix((np.ones(len(before), np.float32), (before, after)),
                           shape=(ranker.n_items, ranker.n_items))
    counts.sum_duplicates()
    return counts


def cosine_similarity(gram: sp.csr_matrix) -> sp.csr_matrix:
    """Items' cosine similarity over their training users (no self-similarity)."""
    norms = np.sqrt(gram.diagonal()).astype(np.float32)
    norms[norms == 0] = 1.0
    sim = (sp.diags(1 / norms) @ gram @ sp.diags(1 / norms)).tocsr()
    sim.setdiag(0.0)
    sim.eliminate_zeros()
    return sim


TRANSITION_DECAY = 0.5  # each earlier item of the window weighs half the one after it


def tune_transitions(ranker: Ranker, tested: Ranker, gram: sp.csr_matrix, val: HeldOut,
                     test: HeldOut, ks: tuple[int, ...], cfg: EvalConfig,
                     monitor: str) -> BaselineResult:
    """The transitions baseline (module docstring), its window and blend chosen on
    validation. A test pair reads its user's latest items from `tested` (under
    eval.test_history=train+validation, the validation item is the latest)."""
    start = time.perf_counter()
    counts, similar = transition_counts(ranker), cosine_similarity(gram)
    # Far below any count or similarity step: orders only items that tie otherwise.
    popular = (ranker.item_counts / max(ranker.item_counts.max(), 1.0) * 1e-6)[None, :]

    def scorer(rows: sp.csr_matrix, window: int) -> Scores:
        def scores(r: Ranker, users: np.ndarray) -> np.ndarray:
            latest = r.sequences.last_items(users, window)
            out = np.zeros((len(users), r.n_items)) + popular
            for back in range(window):  # column -1 is the latest item
                items = latest[:, -1 - back]
                has = np.flatnonzero(items >= 0)
                out[has] += TRANSITION_DECAY ** back * rows[items[has]].toarray()
            return out
        return scores

    def candidates() -> Iterator[tuple[str, Scores]]:
        for blend in cfg.transition_blends:
            rows = (counts + blend * similar).tocsr()
            for window in cfg.transition_windows:
                yield f"window={window} blend={blend:g}", scorer(rows, window)

    return reported("transitions", ranker, tested,
                    *choose(ranker, val, ks, monitor, candidates(), cfg.baseline_tune_pairs),
                    val, test, ks, cfg, start)


TUNE_SEED = 0  # the validation pairs a grid is compared on: one draw, the same for every grid


def choose(ranker: Ranker, val: HeldOut, ks: tuple[int, ...], monitor: str,
           candidates: Iterable[tuple[str, Scores]], tune_pairs: int | None,
           ) -> tuple[str, Scores, np.ndarray | None]:
    """The candidate (label, scores of users) best on validation `monitor` (the first of
    equals), compared on at most `tune_pairs` validation pairs (a fixed draw: ranking every
    pair once per grid value was most of item-kNN's and iALS's time at 18k items), with its
    validation ranks when every pair was ranked (None: the caller ranks them). Candidates are
    built one at a time."""
    on = subsample(val, tune_pairs, TUNE_SEED)
    best = None
    for label, scores in candidates:
        val_ranks = ranker.ranks(on, scores)
        value = ranking_metrics(val_ranks, ks, "val")[monitor]
        if best is None or value > best[0]:
            best = (value, label, scores, val_ranks)
    assert best is not None, "an empty grid"  # EvalConfig refuses one
    return best[1], best[2], best[3] if on is val else None


def reported(name: str, ranker: Ranker, tested: Ranker, label: str, scores: Scores,
             val_ranks: np.ndarray | None, val: HeldOut, test: HeldOut, ks: tuple[int, ...],
             cfg: EvalConfig, start: float) -> BaselineResult:
    """The chosen candidate ranked on every validation pair (unless `val_ranks` holds them)
    and on test (from `tested`'s histories), with its metrics and seconds (tune, test)."""
    tuned = time.perf_counter()
    if val_ranks is None:
        val_ranks = ranker.ranks(val, scores)
    result = _finish(name, val_ranks, tested.ranks(test, scores), val, test, ks,
                     cfg.interval_resamples, label)
    result.seconds = {"tune": round(tuned - start, 2),
                      "test": round(time.perf_counter() - tuned, 2)}
    return result


def tune_ease(ranker: Ranker, tested: Ranker, gram: sp.csr_matrix, val: HeldOut,
              test: HeldOut, ks: tuple[int, ...], cfg: EvalConfig,
              monitor: str) -> BaselineResult:
    """λ chosen on the `cfg.ease_tune_items` most-rated items (the whole catalog when it is
    no larger) and at most `cfg.baseline_tune_pairs` of their validation pairs, then one
    solve over the whole catalog at that λ."""
    start = time.perf_counter()
    m = cfg.ease_tune_items or ranker.n_items
    subset = None
    if m < ranker.n_items:
        subset = tuning_subset(ranker, gram, val, m)
    on_ranker, on_gram, on_val = subset or (ranker, gram, val)
    on_val = subsample(on_val, cfg.baseline_tune_pairs, TUNE_SEED)
    best = None
    for lam in cfg.ease_lambdas:
        w = ease_weights(on_gram, lam)
        score = ranking_metrics(on_ranker.ranks(on_val, lambda r, u, w=w: r.seen[u] @ w), ks,
                                "val")[monitor]
        if best is None or score > best[0]:
            best = (score, lam, w)
    _, lam, weights = best
    tuned = time.perf_counter()
    if subset is not None:  # the whole catalog, once
        weights = ease_weights(gram, lam)
    solved = time.perf_counter()
    val_ranks = ranker.ranks(val, lambda r, u: r.seen[u] @ weights)
    test_ranks = tested.ranks(test, lambda r, u: r.seen[u] @ weights)
    where = f" (tuned on the {m} most-rated items)" if subset is not None else ""
    result = _finish("ease", val_ranks, test_ranks, val, test, ks, cfg.interval_resamples,
                     f"lambda={lam:g}{where}")
    result.seconds = {"tune": round(tuned - start, 2), "solve": round(solved - tuned, 2),
                      "rank": round(time.perf_counter() - solved, 2)}
    return result


def tuning_subset(ranker: Ranker, gram: sp.csr_matrix, val: HeldOut, m: int,
                  ) -> tuple[Ranker, sp.csr_matrix, HeldOut] | None:
    """The catalog of the m most-rated items: its ranker (and interactions), Gram block and
    the validation pairs whose item is in it (None when too few are)."""
    items = np.sort(np.argsort(-ranker.item_counts, kind="stable")[:m])
    place = np.full(ranker.n_items, -1)
    place[items] = np.arange(m)
    keep = place[val.items] >= 0
    if keep.sum() < MIN_TUNING_PAIRS:
        return None
    sub_x = ranker.seen[:, items].tocsr()
    users, sub_items = sub_x.nonzero()
    sub_ranker = Ranker(users, sub_items, sub_x.shape[0], m, ranker.item_counts[items],
                        ranker.exclude_seen)
    return (sub_ranker, gram[items][:, items], HeldOut(val.users[keep], place[val.items[keep]]))


def _finish(name: str, val_ranks: np.ndarray, test_ranks: np.ndarray, val: HeldOut,
            test: HeldOut, ks: tuple[int, ...], resamples: int, param: str = "") -> BaselineResult:
    return BaselineResult(
        BASELINE_NAMES[name],
        metrics={**ranking_metrics(val_ranks, ks, "val"),
                 **ranking_metrics(test_ranks, ks, "test")},
        intervals={**bootstrap_intervals(val_ranks, val.users, ks, "val", resamples),
                   **bootstrap_intervals(test_ranks, test.users, ks, "test", resamples)},
        param=param, test_ranks=np.asarray(test_ranks, np.int64))


def cached_baselines(path: Path | None, compute: Callable[[], dict[str, BaselineResult]],
                     ) -> dict[str, BaselineResult]:
    """Baselines are computed once per prepared data set and evaluation setting: every trial
    of a study shares them. Their test ranks sit beside the JSON in an .npz."""
    ranks_path = path.with_suffix(".ranks.npz") if path is not None else None
    if path is not None and path.is_file():
        try:
            stored = json.loads(path.read_text())
            results = {name: BaselineResult(**fields) for name, fields in stored.items()}
            with np.load(ranks_path) as ranks:
                for name, result in results.items():
                    result.test_ranks = ranks[name] if name in ranks.files else None
            return results
        except DAMAGED:  # truncated, emptied or edited: compute again (and rewrite)
            pass
    results = compute()
    if path is not None:
        with contextlib.suppress(OSError):  # a read-only cache costs time, not correctness
            with atomic_path(ranks_path, ".npz") as tmp:
                np.savez(tmp, **{n: r.test_ranks for n, r in results.items()
                                 if r.test_ranks is not None})
            write_text_atomic(path, json.dumps({n: r.to_json() for n, r in results.items()}))
    return results
