"""Load + prepare at the full Amazon Electronics file's shape, ours vs the notebook's pandas path."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from recsys.cache import load_prepared
from recsys.config import DataConfig

N_USERS, N_ITEMS = 4_200_000, 476_000


def amazon_shaped_csv(rows: int, path: Path, seed: int = 0) -> Path:
    """rows x (userId, productId, Rating, timestamp), no header, ~4.2M users, ~476k products."""
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    n_users, n_items = min(N_USERS, rows // 2), min(N_ITEMS, rows // 16)
    users = np.concatenate([np.arange(n_users), rng.integers(0, n_users, rows - n_users)])
    popularity = 1.0 / np.arange(1, n_items + 1) ** 1.1
    items = np.concatenate([np.arange(n_items), rng.choice(
        n_items, rows - n_items, p=popularity / popularity.sum())])
    order = rng.permutation(rows)
    users, items = users[order], rng.permutation(n_items)[items[order]]
    table = pa.table({
        "userId": pa.array(np.char.add("A", np.char.zfill(np.char.upper(
            np.vectorize(np.base_repr)(users * 7919 + 12345, 36)), 13))),
        "productId": pa.array(np.char.zfill(items.astype(str), 10)),
        "Rating": pa.array(rng.integers(1, 6, rows).astype(np.float64)),
        "timestamp": pa.array(rng.integers(900_000_000, 1_400_000_000, rows)),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pacsv.write_csv(table, tmp, pacsv.WriteOptions(include_header=False))
    tmp.replace(path)
    return path


def notebook_path(path: Path) -> int:
    """The notebook's cells: read_csv, dropna, 10% sample, groupby-filter(lambda), split."""
    df = pd.read_csv(path, names=["userId", "productId", "Rating", "timestamp"])
    df = df.dropna()
    df = df.sample(frac=0.1, random_state=42)
    df = df.groupby("productId").filter(lambda x: len(x) >= 50)
    df = df.sample(frac=1.0, random_state=42)
    train, test = df.iloc[:180_000], df.iloc[180_000:200_000]
    return len(train) + len(test)


def load_table(rows: int) -> str:
    folder = Path("outputs/bench")
    t = time.perf_counter()
    path = amazon_shaped_csv(rows, folder / f"amazon_shaped_{rows}.csv")
    made = time.perf_counter() - t
    cache = Path(tempfile.mkdtemp(prefix="cache.", dir=folder))
    cfg = DataConfig(name="amazon_electronics", path=str(path), min_item_ratings=50,
                     cache_dir=str(cache))
    try:
        t = time.perf_counter()
        data, info = load_prepared(cfg)
        cold = time.perf_counter() - t
        assert info["cache"] == "miss"
        t = time.perf_counter()
        _, info = load_prepared(cfg)
        warm = time.perf_counter() - t
        assert info["cache"] == "hit"
        t = time.perf_counter()
        notebook_rows = notebook_path(path)
        notebook = time.perf_counter() - t
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    size_mb = path.stat().st_size / 1e6
    return "\n".join([
        f"load + prepare: {rows:,} rows, {size_mb:.0f} MB (file written in {made:.0f} s)",
        f"{'path':<48} {'seconds':>8}",
        f"{'notebook: read_csv + sample + groupby.filter':<48} {notebook:>8.1f}",
        f"{'recsys-sweep, cold (parse, filter, split, cache)':<48} {cold:>8.1f}",
        f"{'recsys-sweep, from the cache':<48} {warm:>8.2f}",
        f"notebook / cold = {notebook / cold:.1f}x; ours kept {data.stats['rows_after_filters']:,} "
        f"ratings of {data.stats['catalog_items']:,} products (>= 50 ratings in the whole file); "
        f"the notebook kept {notebook_rows:,}",
    ])
