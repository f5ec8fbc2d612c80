from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from conftest import frame_of, write_lines

from recsys.config import DataConfig
from recsys.errors import UserError
from recsys.loading import read_ratings

AMAZON_ROWS = [
    "AKM1MP6P0OYPR,0132793040,5.0,1365811200",
    "A2CX7LUOHB2NDG,0321732944,5.0,1341100800",
    "A2NWSAGRHCP8N5,0439886341,1.0,1367193600",
    "A2WNBOD3WNDNKT,0439886341,3.0,1374451200",
]


def test_amazon_format_keeps_leading_zeros_and_reads_numbers(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "ratings.csv", AMAZON_ROWS)
    ratings, report = read_ratings(path, DataConfig(path=str(path)))
    df = frame_of(ratings)
    assert list(df["item"]) == ["0132793040", "0321732944", "0439886341", "0439886341"]
    assert list(df["user"])[:2] == ["AKM1MP6P0OYPR", "A2CX7LUOHB2NDG"]
    assert df["rating"].tolist() == [5.0, 5.0, 1.0, 3.0]
    assert df["timestamp"].iloc[0] == 1365811200
    assert report.rows_read == 4 and report.rows_missing_fields == 0


def test_crlf_gzip_and_header(tmp_path: Path) -> None:
    lines = ["userId,movieId,rating,timestamp", "1,007,4.5,964982703", "2,10,3,964981247"]
    path = tmp_path / "ratings.csv.gz"
    with gzip.open(path, "wb") as fh:
        fh.write("\r\n".join(lines).encode() + b"\r\n")
    cfg = DataConfig(path=str(path), header=True, user_column="userId", item_column="movieId",
                     rating_column="rating")
    df = frame_of(read_ratings(path, cfg)[0])
    assert df["item"].tolist() == ["007", "10"]
    assert df["timestamp"].tolist() == [964982703, 964981247]  # no stray '\r'
    assert df["rating"].tolist() == [4.5, 3.0]


def test_tab_separated_without_header(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "u.data", ["196\t242\t3\t881250949", "186\t302\t3\t891717742"])
    cfg = DataConfig(separator="\t", column_names=("u", "i", "r", "t"), user_column="u",
                     item_column="i", rating_column="r", timestamp_column="t")
    df = frame_of(read_ratings(path, cfg)[0])
    assert df["user"].tolist() == ["196", "186"] and df["item"].tolist() == ["242", "302"]


def test_rows_with_missing_fields_are_dropped_and_counted(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "r.csv", [*AMAZON_ROWS, "A1,,5.0,1", "A2,0001,,2",
                                            ",0002,4.0,3"])
    ratings, report = read_ratings(path, DataConfig())
    assert len(ratings) == 4 and report.rows_missing_fields == 3


def test_wrong_number_of_fields_names_the_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "r.csv", [*AMAZON_ROWS[:2], "A9,0001,5.0", AMAZON_ROWS[2]])
    with pytest.raises(UserError, match=r"line 3 has the wrong number of fields.*on_bad_lines"):
        read_ratings(path, DataConfig())
    ratings, report = read_ratings(path, DataConfig(on_bad_lines="skip"))
    assert len(ratings) == 3 and report.bad_lines_skipped == 1


def test_non_numeric_rating_and_timestamp_name_line_and_value(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "r.csv", [*AMAZON_ROWS[:2], "A9,0001,five,1341100800"])
    with pytest.raises(UserError, match=r"line 3: rating column 'Rating' holds 'five'"):
        read_ratings(path, DataConfig())
    path = write_lines(tmp_path / "t.csv", [AMAZON_ROWS[0], "A9,0001,4.0,yesterday"])
    with pytest.raises(UserError, match=r"line 2: timestamp column 'timestamp' holds 'yesterday'"):
        read_ratings(path, DataConfig())


@pytest.mark.parametrize("content", [b"", b"userId,productId,Rating,timestamp\n"])
def test_empty_file_or_header_only(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(UserError, match="no ratings"):
        read_ratings(path, DataConfig(header=bool(content)))


def test_missing_path_and_directory(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        read_ratings(tmp_path / "nope.csv", DataConfig())
    with pytest.raises(UserError, match="is a directory"):
        read_ratings(tmp_path, DataConfig())
