"""Read a delimited ratings file into `Ratings` (string ids, float ratings, int64 timestamps)
and a `LoadReport` of what was dropped or skipped.

One reader for every format the data configs describe (separator, header or not, column names,
gzip by file extension). It uses pyarrow's multi-threaded CSV parser: the full Amazon
Electronics file (7.8M rows, ~320 MB) parses in seconds. Every column is read as a string first,
so product ids like `0132793040` keep their leading zeros, then ratings and timestamps are
converted with line-numbered errors. CRLF line endings are handled by the parser.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from recsys.config import DataConfig
from recsys.errors import UserError

COLUMNS = ("user", "item", "rating", "timestamp")
# pyarrow picks the codec by extension.
COMPRESSIONS = {".gz": "gzip", ".bz2": "bzip2", ".zst": "zstd", ".lz4": "lz4"}


@dataclass(frozen=True)
class LoadReport:
    rows_read: int
    rows_missing_fields: int
    bad_lines_skipped: int
    ids_trimmed: int = 0  # ids with spaces around them (' U1 ' is the user 'U1')


def check_data_path(path: Path) -> None:
    """A readable regular file, or one line saying what it is instead."""
    if not path.exists() and path.is_symlink():
        raise UserError(f"data.path={str(path)!r} is a symbolic link that does not resolve (a "
                        "loop or a missing target): point data.path at a ratings file")
    if not path.exists():
        raise UserError(f"data.path={str(path)!r} does not exist: point data.path at a ratings file")
    if path.is_dir():
        raise UserError(f"data.path={str(path)!r} is a directory: point it at a ratings file")
    if not path.is_file():  # a FIFO or device would block or never end
        raise UserError(f"data.path={str(path)!r} is not a regular file (a pipe, socket or "
                        "device): point it at a ratings file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise UserError(f"data.path={str(path)!r} cannot be read: {exc.strerror}") from None


def read_ratings(path: str | Path, cfg: DataConfig) -> tuple[Ratings, LoadReport]:
    """Return (ratings with integer-coded ids, report); raise UserError on bad input."""
    path = Path(path)
    check_data_path(path)
    wanted = {"user": cfg.user_column, "item": cfg.item_column, "rating": cfg.rating_column}
    if cfg.timestamp_column:
        wanted["timestamp"] = cfg.timestamp_column
    if cfg.header:
        _check_header(path, cfg, wanted)
    table, bad_lines = _parse(path, cfg, wanted)
    if bad_lines and cfg.on_bad_lines == "error":
        raise _bad_lines_error(path, cfg, table, bad_lines, wanted)
    columns, original_row = _without_missing(path, table, wanted)
    line_offset = (1 if cfg.header else 0) + 1  # 1-based; exact when no bad line was skipped
    where = _Where(path, original_row, line_offset, bool(bad_lines))
    # Spaces around an id are not part of it (' U1 ' and 'U1' were two users): trimmed, and
    # counted for a console note. Ids become integer codes plus one dictionary each.
    trimmed = 0
    for role in ("user", "item"):
        clean = pc.utf8_trim_whitespace(columns[role])
        trimmed += pc.sum(pc.not_equal(clean, columns[role])).as_py() or 0
        if blank := pc.sum(pc.equal(clean, "")).as_py():
            raise UserError(f"data.path={str(path)!r}: {blank} row(s) have a {role} id of "
                            "spaces only: give every row an id (or leave the field empty: "
                            "such rows are dropped and counted)")
        columns[role] = clean
    users = columns["user"].dictionary_encode()
    items = columns["item"].dictionary_encode()
    ratings = Ratings(
        user=users.indices.to_numpy(zero_copy_only=False).astype(np.int32),
        item=items.indices.to_numpy(zero_copy_only=False).astype(np.int32),
        user_ids=users.dictionary, item_ids=items.dictionary,
        rating=_to_number(columns["rating"], "rating", cfg.rating_column, where, integer=False),
        timestamp=(_to_number(columns["timestamp"], "timestamp", cfg.timestamp_column or "",
                              where, integer=True) if "timestamp" in columns
                   else np.zeros(len(original_row), dtype=np.int64)),
    )
    return ratings, LoadReport(table.num_rows, table.num_rows - len(original_row),
                               len(bad_lines), trimmed)


def _check_header(path: Path, cfg: DataConfig, wanted: dict[str, str]) -> None:
    """A column the config names must appear once in the header: with two `rating` columns
    the first was used, silently."""
    try:
        with pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16),
                            parse_options=pacsv.ParseOptions(delimiter=cfg.separator)) as reader:
            names = reader.schema.names
    except (pa.ArrowInvalid, OSError):  # the parse proper says what is wrong
        return
    for role, column in wanted.items():
        if names.count(column) > 1:
            raise UserError(f"data.path={str(path)!r}: the header names column {column!r} "
                            f"{names.count(column)} times, and data.{role}_column reads it: "
                            "rename the copies, or point the setting at another column")


def _options(cfg: DataConfig, wanted: dict[str, str], on_invalid: Any, use_threads: bool = True,
             ) -> tuple[pacsv.ReadOptions, pacsv.ParseOptions, pacsv.ConvertOptions]:
    """pyarrow's options: every wanted column as a string, only an empty field missing."""
    return (
        pacsv.ReadOptions(column_names=None if cfg.header else list(cfg.column_names),
                          autogenerate_column_names=False, block_size=1 << 24,
                          use_threads=use_threads),
        pacsv.ParseOptions(delimiter=cfg.separator, invalid_row_handler=on_invalid),
        pacsv.ConvertOptions(
            column_types={col: pa.string() for col in wanted.values()},
            include_columns=list(wanted.values()),
            # Only an empty field is missing: ids such as `NA`, `null` or `nan` are ids
            # (pyarrow's default null strings would drop those rows silently).
            null_values=[""], strings_can_be_null=True))


def _parse(path: Path, cfg: DataConfig, wanted: dict[str, str],
           ) -> tuple[pa.Table, list[tuple[int | None, str]]]:
    """The wanted columns as strings, and the lines with a wrong number of fields (skipped);
    a file that cannot be parsed at all is one UserError saying why."""
    bad_lines: list[tuple[int | None, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad_lines.append((row.number, row.text))
        return "skip"

    undecodable: list[BaseException] = []
    not_utf8 = UserError(f"data.path={str(path)!r} is not a UTF-8 text ratings file "
                         "(undecodable bytes)")
    try:
        with _collect_unraisable(undecodable):  # a binary file: pyarrow's row callback fails
            table = pacsv.read_csv(path, *_options(cfg, wanted, on_invalid))
    except (pa.ArrowInvalid, pa.ArrowKeyError, OSError) as exc:
        message = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        if undecodable or "invalid UTF8" in message or "utf8" in message.lower():
            raise not_utf8 from None
        if isinstance(exc, OSError) and not isinstance(exc, pa.ArrowInvalid):
            kind = COMPRESSIONS.get(path.suffix)
            compressed = f" (a truncated or not really {kind}-compressed file?)" if kind else ""
            raise UserError(f"data.path={str(path)!r} cannot be read: {message}"
                            f"{compressed}") from None
        if "No columns" in message or "Empty CSV" in message or "empty" in message.lower():
            raise UserError(f"data.path={str(path)!r} holds no ratings (empty file)") from None
        if "not found" in message or "include_columns" in message:
            raise UserError(f"{path}: the configured columns {list(wanted.values())} are not all "
                            f"in the file ({message}); check data.header and data.*_column") from None
        raise UserError(f"{path}: cannot parse as {cfg.separator!r}-separated ratings: "
                        f"{message}") from None
    if undecodable:
        raise not_utf8
    return table, bad_lines


def _bad_lines_error(path: Path, cfg: DataConfig, table: pa.Table,
                     bad_lines: list[tuple[int | None, str]], wanted: dict[str, str],
                     ) -> UserError:
    """The first line with a wrong number of fields, by number, and how many there are."""
    number, text = bad_lines[0]
    if number is None:  # the parallel parser does not know line numbers: ask a serial one
        first: list[int | None] = []

        def record(row: pacsv.InvalidRow) -> str:
            first.append(row.number)
            return "error"

        with contextlib.suppress(pa.ArrowInvalid):
            pacsv.read_csv(path, *_options(cfg, wanted, record, use_threads=False))
        number = first[0] if first else None
    where = f"line {number}" if number is not None else "a line"
    expected = len(table.column_names) if cfg.header else len(cfg.column_names)
    return UserError(
        f"{path}: {where} has the wrong number of fields ({text[:80]!r}; expected "
        f"{expected} separated by {cfg.separator!r}); {len(bad_lines)} such line(s) in all. "
        "Fix the file or set data.on_bad_lines=skip")


def _without_missing(path: Path, table: pa.Table, wanted: dict[str, str],
                     ) -> tuple[dict[str, pa.Array], np.ndarray]:
    """The columns without rows that miss a field (empty, a blank id, a `NaN` rating), and
    each kept row's position in the file (for line numbers in errors)."""
    rows_read = table.num_rows
    columns = {name: table.column(col).combine_chunks() for name, col in wanted.items()}
    missing = np.zeros(rows_read, dtype=bool)
    for name, values in columns.items():
        missing |= values.is_null().to_numpy(zero_copy_only=False)
        if name == "rating":  # `NaN` is a missing rating, as the notebook's dropna had it
            nan = pc.equal(pc.ascii_lower(pc.utf8_trim_whitespace(values)), "nan")
            missing |= nan.fill_null(False).to_numpy(zero_copy_only=False)
        if name in ("user", "item"):
            blank = pc.equal(pc.utf8_trim_whitespace(values), "").fill_null(False)
            missing |= blank.to_numpy(zero_copy_only=False)
    n_missing = int(missing.sum())
    if n_missing == rows_read:
        raise UserError(f"data.path={str(path)!r} holds no ratings ({rows_read} data rows, "
                        f"{n_missing} with missing fields)")
    keep = pa.array(~missing)
    return ({name: values.filter(keep) for name, values in columns.items()},
            np.flatnonzero(~missing))


@contextlib.contextmanager
def _collect_unraisable(into: list[BaseException]) -> Iterator[None]:
    """Collect exceptions Python would print as "Exception ignored in ..." (pyarrow calls our
    invalid-row handler from C; a row that is not UTF-8 fails before reaching it)."""
    previous = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: into.append(unraisable.exc_value)
    try:
        yield
    finally:
        sys.unraisablehook = previous


@dataclass(frozen=True)
class _Where:
    path: Path
    original_row: np.ndarray
    line_offset: int
    lines_skipped: bool

    def line(self, position: int) -> str:
        row = int(self.original_row[position])
        return f"data row {row + 1}" if self.lines_skipped else f"line {row + self.line_offset}"


def _to_number(values: pa.Array, kind: str, column: str, where: _Where,
               integer: bool) -> np.ndarray:
    trimmed = pc.utf8_trim_whitespace(values)
    try:
        out = pc.cast(trimmed, pa.float64()).to_numpy(zero_copy_only=False)
        finite = np.isfinite(out)
        if not integer and finite.all():
            return out
        # float64 holds every int64 below 2**63 that a timestamp can be; above, it would wrap
        if integer and finite.all() and np.all(np.abs(out) < 2.0**63) \
                and np.all(np.mod(out, 1) == 0):
            return out.astype(np.int64)
    except pa.ArrowInvalid:
        pass
    # Slow path, only to name the first bad value.
    text = pd.Series(trimmed.to_numpy(zero_copy_only=False))
    converted = pd.to_numeric(text, errors="coerce").astype(np.float64)
    bad = ~np.isfinite(converted.to_numpy())
    if integer:
        bad |= (converted.fillna(0) % 1 != 0).to_numpy() | (converted.abs() >= 2.0**63).to_numpy()
    position = int(np.flatnonzero(bad)[0])
    valid = "an integer (unix time) below 2**63" if integer else "a finite number"
    raise UserError(f"{where.path}: {where.line(position)}: {kind} column {column!r} holds "
                    f"{values[position].as_py()!r}; expected {valid} ({int(bad.sum())} bad "
                    "value(s) in all)")


@dataclass(frozen=True)
class Ratings:
    """Ratings with ids as int32 codes into two string dictionaries (Arrow arrays)."""

    user: np.ndarray
    item: np.ndarray
    user_ids: pa.Array
    item_ids: pa.Array
    rating: np.ndarray
    timestamp: np.ndarray

    def __len__(self) -> int:
        return len(self.user)
