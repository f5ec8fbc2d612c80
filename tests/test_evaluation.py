"""One ranking rule for every scorer: ties, seen items, baselines and intervals, checked against
direct numpy computations on data small enough to verify by hand."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.baselines import (
    TUNE_SEED,
    ease_weights,
    gram_matrix,
    interaction_matrix,
    itemknn_weights,
    run_baselines,
    top_neighbours,
)
from recsys.config import EvalConfig
from recsys.evaluation import HeldOut, Ranker, bootstrap_intervals, subsample
from recsys.metrics import exact_ranks, ranking_metrics, top_k_accuracy

# users 1..3 (0 is the unknown-user slot), items 0..4
TRAIN_USER = np.array([1, 1, 2, 2, 2, 3, 3])
TRAIN_ITEM = np.array([0, 1, 0, 2, 3, 1, 3])
COUNTS = np.bincount(TRAIN_ITEM, minlength=5)  # [2, 2, 1, 2, 0]


def ranker(exclude_seen: bool) -> Ranker:
    return Ranker(TRAIN_USER, TRAIN_ITEM, n_users=4, n_items=5, item_counts=COUNTS,
                  exclude_seen=exclude_seen)


def direct_rank(scores: np.ndarray, true: int, order: np.ndarray, hidden: set[int]) -> int:
    """The rule spelled out: items before the true one, by score then by the tie order."""
    return sum(1 for i in range(len(scores)) if i != true and i not in hidden and (
        scores[i] > scores[true] or (scores[i] == scores[true] and order[i] < order[true])))


def test_ties_follow_the_fixed_order_not_the_true_item() -> None:
    r = ranker(exclude_seen=False)
    flat = np.zeros((1, 5))  # a sparse scorer's typical row: everything tied at 0
    for true in range(5):
        rank = r.ranks(HeldOut(np.array([1]), np.array([true])), lambda r, users: flat)[0]
        assert rank == r.tie_order[true]  # the number of items ahead of it in the tie order
    # Without a rule, counting only higher scores, every one of them would be rank 0.
    assert sorted(r.tie_order.tolist()) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("exclude_seen", [False, True])
def test_model_popularity_and_dense_ranks_match_the_rule(exclude_seen: bool) -> None:
    r = ranker(exclude_seen)
    rng = np.random.default_rng(1)
    queries = rng.integers(-2, 3, size=(4, 3)).astype(np.float32)  # integer: exact ties
    items = rng.integers(-2, 3, size=(5, 3)).astype(np.float32)
    held = HeldOut(np.array([1, 2, 3, 0, 3]), np.array([2, 1, 4, 3, 0]))
    seen = {u: set(TRAIN_ITEM[np.equal(TRAIN_USER, u)].tolist()) if exclude_seen else set() for u in range(4)}
    scores = queries @ items.T
    expected_model = [direct_rank(scores[u], t, r.tie_order, seen[u]) if u > 0 else
                      direct_rank(COUNTS.astype(float), t, r.tie_order, set())
                      for u, t in zip(held.users, held.items, strict=True)]
    got = r.model_ranks(held, lambda users: queries[users], items, batch_size=2)
    assert got.tolist() == expected_model
    assert r.ranks(held, lambda r, users: scores[users]).tolist() == expected_model
    expected_pop = [direct_rank(COUNTS.astype(float), t, r.tie_order, seen[u])
                    for u, t in zip(held.users, held.items, strict=True)]
    assert r.popularity_ranks(held).tolist() == expected_pop


def test_exclude_seen_leaves_out_exactly_the_training_items() -> None:
    # User 2 rated items 0, 2, 3; score those highest: excluded, the true item 1 is first.
    scores = np.array([[0, 0, 0, 0, 0]] * 3 + [[9, 1, 8, 7, 0]], dtype=float)
    held = HeldOut(np.array([2]), np.array([1]))
    assert ranker(True).ranks(held, lambda r, users: scores[users + 1])[0] == 0
    kept = ranker(False).ranks(held, lambda r, users: scores[users + 1])[0]
    assert kept == 3


def direct_knn(x: np.ndarray, k: int) -> np.ndarray:
    """item-kNN spelled out: cosine between item columns, no self-similarity, each row keeping
    its k largest positive values (equal values: the lower item index first)."""
    norms = np.sqrt((x * x).sum(axis=0))
    norms[norms == 0] = 1
    cosine = (x.T @ x) / np.outer(norms, norms)
    np.fill_diagonal(cosine, 0)
    kept = np.zeros_like(cosine)
    for i, row in enumerate(cosine):
        for j in sorted(range(len(row)), key=lambda j: (-row[j], j))[:k]:
            kept[i, j] = row[j] if row[j] > 0 else 0
    return kept


def direct_ease(x: np.ndarray, lam: float) -> np.ndarray:
    """EASE spelled out: B = I - P / diag(P), P = (XᵀX + λI)^-1, zero diagonal."""
    p = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0)
    return b


def test_itemknn_and_ease_equal_a_direct_numpy_computation() -> None:
    r = ranker(False)
    x = interaction_matrix(r).toarray()
    gram = gram_matrix(interaction_matrix(r))
    neighbours = top_neighbours(gram, 5)
    np.testing.assert_allclose(neighbours.toarray(), direct_knn(x, 5), atol=1e-6)
    # hand-checked: items 0 and 1 share user 1 of their two users each -> cosine 1/2
    assert direct_knn(x, 5)[0, 1] == pytest.approx(0.5)
    for k in (1, 2):  # a smaller k cuts the sorted neighbours, ties by the lower index
        np.testing.assert_allclose(itemknn_weights(neighbours, k).toarray(), direct_knn(x, k),
                                   atol=1e-6)
    assert ((itemknn_weights(neighbours, 1).toarray() > 0).sum(axis=1) <= 1).all()
    for lam in (0.5, 2.0, 50.0):
        np.testing.assert_allclose(ease_weights(gram, lam), direct_ease(x, lam), rtol=1e-4,
                                   atol=1e-5)


def direct_choice(r: Ranker, x: np.ndarray, build, grid, val: HeldOut, test: HeldOut,
                  monitor: str, ks=(1, 2)) -> tuple[object, dict[str, float]]:
    """The grid value with the best validation `monitor` (the first of equals), and its
    validation and test metrics, ranked by `direct_rank`."""
    def ranks(held: HeldOut, w: np.ndarray) -> np.ndarray:
        return np.array([direct_rank((x @ w)[u], t, r.tie_order, set()) if u > 0 else
                         direct_rank(COUNTS.astype(float), t, r.tie_order, set())
                         for u, t in zip(held.users, held.items, strict=True)])

    scores = {v: ranking_metrics(ranks(val, build(x, v)), ks, "val")[monitor] for v in grid}
    chosen = max(grid, key=lambda v: scores[v])
    w = build(x, chosen)
    return chosen, {**ranking_metrics(ranks(val, w), ks, "val"),
                    **ranking_metrics(ranks(test, w), ks, "test")}


VAL = HeldOut(np.array([1, 3, 0, 2]), np.array([3, 0, 1, 1]))
TEST = HeldOut(np.array([2, 1]), np.array([1, 2]))


@pytest.mark.parametrize("monitor", ["val_top_2", "val_mrr", "val_ndcg_1"])
def test_baselines_report_the_direct_metrics_and_choose_on_validation(monitor: str) -> None:
    r = ranker(False)
    cfg = EvalConfig(baselines=("itemknn", "ease"), baseline_max_items=100,
                     knn_neighbors=(1, 5), ease_lambdas=(2.0, 50.0), interval_resamples=0,
                     ease_tune_items=0)
    results = run_baselines(r, VAL, TEST, (1, 2), cfg, monitor=monitor)
    x = interaction_matrix(r).toarray()
    k, knn_metrics = direct_choice(r, x, direct_knn, (1, 5), VAL, TEST, monitor)
    assert results["itemknn"].param == f"k={k}"
    assert results["itemknn"].metrics == pytest.approx(knn_metrics)
    lam, ease_metrics = direct_choice(r, x, direct_ease, (2.0, 50.0), VAL, TEST, monitor)
    assert results["ease"].param == f"lambda={lam:g}"
    assert results["ease"].metrics == pytest.approx(ease_metrics)
    assert results["popularity"].param == ""
    assert set(results["ease"].seconds) == {"gram", "tune", "solve", "rank"}


def test_a_grid_is_compared_on_the_tuning_draw_and_reported_on_every_pair() -> None:
    """eval.baseline_tune_pairs=2 of 4 validation pairs: item-kNN's k is the one a direct
    computation chooses on that fixed draw (here not the one all four pairs choose), and its
    validation metrics are over all four pairs."""
    r = ranker(False)
    cfg = EvalConfig(baselines=("itemknn",), baseline_max_items=100, knn_neighbors=(1, 5),
                     interval_resamples=0, baseline_tune_pairs=2)
    result = run_baselines(r, VAL, TEST, (1, 2), cfg, monitor="val_mrr")["itemknn"]
    x = interaction_matrix(r).toarray()
    draw = subsample(VAL, 2, TUNE_SEED)
    chosen = direct_choice(r, x, direct_knn, (1, 5), draw, TEST, "val_mrr")[0]
    assert chosen != direct_choice(r, x, direct_knn, (1, 5), VAL, TEST, "val_mrr")[0]
    assert result.param == f"k={chosen}"
    _, metrics = direct_choice(r, x, direct_knn, (chosen,), VAL, TEST, "val_mrr")
    assert result.metrics == pytest.approx(metrics)


def test_ease_lambda_tuned_on_the_most_rated_items_then_solved_on_all(monkeypatch) -> None:
    """eval.ease_tune_items=3 of 5 items: λ is chosen as a direct computation on those three
    items' columns (their validation pairs only) chooses it; the reported model is EASE over
    all five items at that λ."""
    import recsys.baselines

    monkeypatch.setattr(recsys.baselines, "MIN_TUNING_PAIRS", 1)
    r = ranker(False)
    grid = (0.01, 0.1, 1.0)  # on all five items val_mrr would choose 1.0; on three, 0.01
    cfg = EvalConfig(baselines=("ease",), baseline_max_items=100, knn_neighbors=(1,),
                     ease_lambdas=grid, interval_resamples=0, ease_tune_items=3)
    result = run_baselines(r, VAL, TEST, (1, 2), cfg, monitor="val_mrr")["ease"]
    items = np.array([0, 1, 3])  # the three most rated (counts 2, 2, 1, 2, 0; ties by index)
    sub = Ranker(TRAIN_USER[np.isin(TRAIN_ITEM, items)],
                 np.searchsorted(items, TRAIN_ITEM[np.isin(TRAIN_ITEM, items)]), 4, 3,
                 COUNTS[items], False)
    keep = np.isin(VAL.items, items)
    sub_val = HeldOut(VAL.users[keep], np.searchsorted(items, VAL.items[keep]))
    x = interaction_matrix(r).toarray()

    def sub_mrr(lam: float) -> float:
        w = direct_ease(x[:, items], lam)
        ranks = [direct_rank((x[:, items] @ w)[u], t, sub.tie_order, set()) if u > 0 else
                 direct_rank(COUNTS[items].astype(float), t, sub.tie_order, set())
                 for u, t in zip(sub_val.users, sub_val.items, strict=True)]
        return ranking_metrics(np.array(ranks), (1, 2), "val")["val_mrr"]

    chosen = max(grid, key=sub_mrr)
    assert chosen != direct_choice(r, x, direct_ease, grid, VAL, TEST, "val_mrr")[0]
    assert result.param == f"lambda={chosen:g} (tuned on the 3 most-rated items)"
    _, metrics = direct_choice(r, x, direct_ease, (chosen,), VAL, TEST, "val_mrr")
    assert result.metrics == pytest.approx(metrics)


def test_baselines_are_skipped_with_the_reason_above_the_item_limit() -> None:
    r = ranker(False)
    held = HeldOut(np.array([1]), np.array([2]))
    cfg = EvalConfig(baselines=("itemknn", "ease"), baseline_max_items=4, knn_neighbors=(5,),
                     ease_lambdas=(1.0,), interval_resamples=0)
    results = run_baselines(r, held, held, (1,), cfg, monitor="val_top_1")
    assert "eval.baseline_max_items=4" in results["ease"].skipped
    assert results["itemknn"].metrics == {} and results["popularity"].metrics


def test_bootstrap_interval_covers_the_true_value_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    true_value, covered, runs = 2 / 7, 0, 200  # E[p] with p ~ Beta(2, 5), pairs independent of p
    for run in range(runs):
        n_users = 300
        pairs = 1 + rng.poisson(3, n_users)
        p = rng.beta(2, 5, n_users)
        users = np.repeat(np.arange(1, n_users + 1), pairs)
        hits = rng.random(len(users)) < np.repeat(p, pairs)
        ranks = np.where(hits, 0, 5)  # a hit at k=1 or not
        low, high = bootstrap_intervals(ranks, users, (1,), "val", resamples=300, seed=run)["val_top_1"]
        covered += low <= true_value <= high
    assert 0.9 <= covered / runs <= 0.99, covered / runs


def test_exact_ranks_without_a_tie_order_keep_factorized_top_k_rule() -> None:
    queries = np.zeros((1, 2), np.float32)
    items = np.ones((3, 2), np.float32)
    assert exact_ranks(queries, items, np.array([2])).tolist() == [0]  # ties favour it
    assert exact_ranks(queries, items, np.array([2]),
                       tie_order=np.array([0, 1, 2])).tolist() == [2]


def test_metrics_split_by_known_and_unknown_users_add_up_to_the_whole() -> None:
    from recsys.evaluation import split_by_user

    ranks = np.array([0, 5, 200, 1, 0, 300])
    users = np.array([1, 0, 2, 0, 3, 3])
    known = split_by_user(ranks, users, (1, 10), "test", "known")
    unknown = split_by_user(ranks, users, (1, 10), "test", "unknown")
    assert known == {"test_pairs": 4, "test_top_1": 0.5, "test_top_10": 0.5}
    assert unknown == {"test_pairs": 2, "test_top_1": 0.0, "test_top_10": 1.0}
    whole = top_k_accuracy(ranks, (1, 10), "test")
    for k in (1, 10):
        mixed = (known[f"test_top_{k}"] * 4 + unknown[f"test_top_{k}"] * 2) / 6
        assert mixed == pytest.approx(whole[f"test_top_{k}"])


def test_ials_chooses_on_validation_as_a_direct_fit_does() -> None:
    """iALS through the harness: the grid value a direct `implicit` fit and a NumPy ranking
    choose on validation, and that fit's validation and test metrics."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(3)
    n_users, n_items = 60, 40
    users = rng.integers(1, n_users, size=600)
    items = (users * 7 + rng.integers(0, 6, size=600)) % n_items  # a planted taste
    counts = np.bincount(items, minlength=n_items)
    r = Ranker(users, items, n_users, n_items, counts, False)
    val = HeldOut(rng.integers(1, n_users, size=80), rng.integers(0, n_items, size=80))
    test = HeldOut(rng.integers(1, n_users, size=80), rng.integers(0, n_items, size=80))
    grid = {"ials_factors": (4, 8), "ials_regularization": (0.1, 10.0), "ials_alpha": (1.0,)}
    cfg = EvalConfig(baselines=("ials",), interval_resamples=0, ials_iterations=5, **grid)
    result = run_baselines(r, val, test, (5, 10), cfg, monitor="val_top_10")["ials"]
    x = interaction_matrix(r).tocsr()

    def direct(factors: int, reg: float) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(factors=factors, regularization=reg, alpha=1.0,
                                            iterations=5, random_state=0)
            model.fit(x, show_progress=False)
        scores = model.user_factors @ model.item_factors.T
        ranks = {name: np.array([direct_rank(scores[u], t, r.tie_order, set()) if u > 0 else
                                 direct_rank(counts.astype(float), t, r.tie_order, set())
                                 for u, t in zip(held.users, held.items, strict=True)])
                 for name, held in (("val", val), ("test", test))}
        return ({**ranking_metrics(ranks["val"], (5, 10), "val"),
                 **ranking_metrics(ranks["test"], (5, 10), "test")}, ranks["val"], scores)

    fits = {(f, g): direct(f, g)[0] for f in (4, 8) for g in (0.1, 10.0)}
    chosen = max(fits, key=lambda key: fits[key]["val_top_10"])  # the first of equals
    assert result.param == f"factors={chosen[0]} reg={chosen[1]:g} alpha=1"
    assert result.metrics == pytest.approx(fits[chosen])


@pytest.mark.parametrize(("json_text", "ranks_bytes"), [
    (None, b""), (None, b"PK\x03\x04 cut short"), ("[]", None), ("{}x", None),
    ('{"ease": {"nope": 1}}', None)])
def test_a_damaged_baseline_cache_is_computed_again(tmp_path, json_text, ranks_bytes) -> None:
    from recsys.baselines import BaselineResult, cached_baselines

    path = tmp_path / "baselines-x.json"
    calls = []

    def compute() -> dict[str, BaselineResult]:
        calls.append(1)
        return {"ease": BaselineResult("EASE", metrics={"val_top_1": 0.5},
                                       test_ranks=np.arange(4))}

    first = cached_baselines(path, compute)
    assert cached_baselines(path, compute)["ease"].metrics == first["ease"].metrics
    assert len(calls) == 1  # the second read was a hit
    if json_text is not None:
        path.write_text(json_text)
    if ranks_bytes is not None:
        path.with_suffix(".ranks.npz").write_bytes(ranks_bytes)
    again = cached_baselines(path, compute)
    assert len(calls) == 2 and again["ease"].metrics == {"val_top_1": 0.5}
    np.testing.assert_array_equal(again["ease"].test_ranks, np.arange(4))
    cached_baselines(path, compute)  # rewritten whole: a hit again
    assert len(calls) == 2
