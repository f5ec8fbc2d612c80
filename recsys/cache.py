"""Prepared data cached on disk, once per data set and data config, shared by every trial.

The key hashes every data setting that changes steps 1-3 of `recsys.prepare` (not
`sample_fraction`, which is applied per trial) plus the source file's identity (resolved path,
size, modification time). A changed file or setting gives a new key; entries are written to a
temporary folder and renamed into place, so concurrent trials or workers never read half an
entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather

from recsys.config import DataConfig
from recsys.errors import UserError
from recsys.loading import check_data_path, read_ratings
from recsys.prepare import PreparedData, prepare
from recsys.synthetic import ensure_csv

# 2: ids such as `NA` are kept (only empty fields are missing); 3: temporal ties at a cut
# drawn in seeded random order; 4: per-user splits; 5: spaces around ids trimmed; 6: a user's
# equal timestamps in file order in the per-user splits; 7: per_user_file_order noted
CACHE_VERSION = 7
_NOT_IN_KEY = {"sample_fraction", "cache_dir", "name", "synthetic"}


# What reading a damaged cache file raises (truncated, emptied, edited): the entry is then
# discarded and computed again.
DAMAGED = (OSError, ValueError, TypeError, KeyError, AttributeError, EOFError,
           zipfile.BadZipFile, pa.ArrowException)


def source_path(cfg: DataConfig) -> Path:
    """The ratings file of a data config; the synthetic default is generated on first use."""
    if cfg.path:
        return Path(cfg.path).expanduser()
    directory = Path(cfg.cache_dir or tempfile.gettempdir()) / "synthetic"
    try:
        return ensure_csv(cfg.synthetic, directory)
    except OSError as exc:
        raise UserError(f"data.cache_dir={cfg.cache_dir!r}: cannot write the generated data set "
                        f"there ({exc.strerror}); set data.cache_dir to a writable folder") from None


FULL_DIGEST_BYTES = 64 << 20  # files up to this size are hashed whole
SAMPLED_BLOCKS, BLOCK = 256, 1 << 16  # larger ones: 256 evenly spaced 64 kB blocks (16 MB)


def file_digest(path: Path) -> str:
    """A content signature of the data file, the same on every machine: sha256 of the whole
    file up to 64 MB (~0.1 s), else of its size and 256 evenly spaced 64 kB blocks (the
    whole Amazon Electronics file: 16 MB read). Size and mtime alone miss a file rewritten in
    place or replaced with one of the same size and an old mtime."""
    check_data_path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        if size <= FULL_DIGEST_BYTES:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        else:
            for i in range(SAMPLED_BLOCKS):
                f.seek((size - BLOCK) * i // (SAMPLED_BLOCKS - 1))
                digest.update(f.read(BLOCK))
    return digest.hexdigest()[:16]


def file_identity(path: Path) -> str:
    """The data file's identity, the same on every machine (where it lies is left out): its
    name, size and content digest. A study's trials must share it (workers on other machines
    included); the prepared-data cache is keyed by it."""
    digest = file_digest(path)
    return f"{path.name} ({path.stat().st_size} bytes, sha256 {digest})"


def cache_key(cfg: DataConfig, path: Path) -> str:
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_IN_KEY}
    # Where it lies and its mtime too: a file over 64 MB is digested from samples, and a
    # rewrite in place between them must still miss the cache.
    file = file_identity(path)  # first: it refuses a pipe or a link loop in one line
    identity = {"path": str(path.resolve()), "mtime_ns": path.stat().st_mtime_ns, "file": file}
    blob = json.dumps({"v": CACHE_VERSION, "data": settings, "file": identity}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def derived_file(cfg: DataConfig, name: str, settings: dict[str, Any]) -> Path | None:
    """Where something computed from the prepared data (e.g. baseline metrics) is cached,
    beside its entry, keyed by `settings`; None without a cache."""
    if not cfg.cache_dir:
        return None
    try:
        key = cache_key(cfg, source_path(cfg))
    except UserError:
        return None
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return (Path(cfg.cache_dir) / "prepared" / key
            / f"{name}-{hashlib.sha256(blob).hexdigest()[:16]}.json")


def load_prepared(cfg: DataConfig) -> tuple[PreparedData, dict[str, object]]:
    """Return the prepared data and how it was obtained ({'cache': 'hit'|'miss'|'off', ...})."""
    path = source_path(cfg)
    if not cfg.cache_dir:
        return _prepare_from_file(path, cfg), {"cache": "off", "source": str(path)}
    key = cache_key(cfg, path)
    entry = Path(cfg.cache_dir) / "prepared" / key
    notice = None
    if (entry / "meta.json").exists():
        try:
            return _read(entry), {"cache": "hit", "source": str(path), "key": key}
        except DAMAGED as exc:  # truncated by a full disk or a killed copy
            shutil.rmtree(entry, ignore_errors=True)
            notice = (f"the cached copy of the prepared data in {entry} was unreadable "
                      f"({type(exc).__name__}); it was discarded and is rebuilt")
    data = _prepare_from_file(path, cfg)
    try:
        _write(entry, data)
    except OSError as exc:  # a read-only or full cache dir costs speed, not correctness
        return data, {"cache": f"not written ({exc.strerror})", "source": str(path),
                      "notice": notice}
    return data, {"cache": "miss", "source": str(path), "key": key, "notice": notice}


class HeldData:
    """Prepared data held in memory for a process's later runs (a study's trials, its
    confirmation runs): read once, not once per run. Runs whose data settings differ only in
    data.sample_fraction share it (`select_training` applies the fraction)."""

    def __init__(self) -> None:
        self.key: DataConfig | None = None
        self.data: PreparedData | None = None

    def hold(self, cfg: DataConfig, data: PreparedData) -> HeldData:
        self.key, self.data = dataclasses.replace(cfg, sample_fraction=1.0), data
        return self

    def get(self, cfg: DataConfig) -> PreparedData:
        if self.data is None or self.key != dataclasses.replace(cfg, sample_fraction=1.0):
            self.hold(cfg, load_prepared(cfg)[0])
        assert self.data is not None
        return self.data


def _prepare_from_file(path: Path, cfg: DataConfig) -> PreparedData:
    df, report = read_ratings(path, cfg)
    data = prepare(df, cfg)
    data.stats.update(rows_missing_fields=report.rows_missing_fields,
                      bad_lines_skipped=report.bad_lines_skipped, ids_trimmed=report.ids_trimmed)
    return data


def _write(entry: Path, data: PreparedData) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        feather.write_feather(pa.table({"id": data.user_ids}), tmp / "users.arrow",
                              compression="uncompressed")
        feather.write_feather(pa.table({"id": data.item_ids}), tmp / "items.arrow",
                              compression="uncompressed")
        np.savez(tmp / "interactions.npz", user=data.user, item=data.item, split=data.split,
                 sample_rank=data.sample_rank)
        (tmp / "meta.json").write_text(json.dumps(data.stats, indent=1))
        try:
            os.rename(tmp, entry)
        except OSError:
            if not (entry / "meta.json").exists():  # someone else won the race: fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read(entry: Path) -> PreparedData:
    def ids(name: str) -> pa.Array:
        return feather.read_table(entry / name).column("id").combine_chunks()

    with np.load(entry / "interactions.npz") as arrays:
        data = PreparedData(
            user_ids=ids("users.arrow"), item_ids=ids("items.arrow"), user=arrays["user"],
            item=arrays["item"], split=arrays["split"], sample_rank=arrays["sample_rank"],
            stats=json.loads((entry / "meta.json").read_text()),
        )
    # Files that read but do not belong together (an edited or half-replaced entry).
    stats = data.stats
    if not isinstance(stats, dict) or stats.get("users") != len(data.user_ids) or \
            stats.get("catalog_items") != len(data.item_ids) or \
            stats.get("rows_after_filters") != len(data.user) or "train_pool" not in stats:
        raise ValueError("meta.json does not describe the arrays beside it")
    return data
