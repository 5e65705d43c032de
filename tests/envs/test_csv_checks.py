"""envs.csv_checks: the CSV defects pandas hides (bytes that are not UTF-8, duplicated or padded
headers, whole numbers beyond what a float holds exactly)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from envs.csv_checks import LARGEST_EXACT_INTEGER, CSVCheckError, check_csv_bytes, check_whole_numbers

HEADER = "influencer_id,platform,followers,engagement_rate,primary_category,price\n"
ROW = "a1,instagram,1200,0.03,beauty,40\n"


def _write(tmp_path, data: bytes):
    path = tmp_path / "pool.csv"
    path.write_bytes(data)
    return path


def test_a_clean_file_passes(tmp_path):
    check_csv_bytes(_write(tmp_path, (HEADER + ROW).encode()))
    check_csv_bytes(_write(tmp_path, b"\xef\xbb\xbf" + (HEADER + ROW).encode()))  # Excel's BOM
    check_csv_bytes(_write(tmp_path, (HEADER.replace(",", ", ") + ROW).encode()))  # ", " separators


def test_a_latin1_byte_is_named_by_line_and_column(tmp_path):
    data = (HEADER + ROW).encode() + "b2,instagram,900,0.02,beauté,30\n".encode("latin-1")
    with pytest.raises(CSVCheckError, match=r"pool.csv: line 3, column 28: byte 0xe9 is not UTF-8"):
        check_csv_bytes(_write(tmp_path, data))


@pytest.mark.parametrize(
    "header, message",
    [
        (
            HEADER.replace("price", "followers"),
            r"column 6 'followers': the column 'followers' is also column 3",
        ),
        (
            HEADER.replace(",price", ", followers"),
            r"column 6 ' followers': the column 'followers' is also column 3",
        ),
        (HEADER.replace("price", "price "), r"column 6 'price ': spaces after the column name"),
    ],
)
def test_duplicated_or_padded_headers_are_refused(tmp_path, header, message):
    path = _write(tmp_path, (header + ROW).encode())
    with pytest.raises(CSVCheckError, match=message):
        check_csv_bytes(path)
    # What pandas does with it: the copy is renamed, so a duplicate check on its columns never fires.
    frame = pd.read_csv(path, dtype=str, skipinitialspace=True)
    assert frame.columns.is_unique


@pytest.mark.parametrize(
    "value",
    ["1e308", "9" * 30, str(2**63), str(2**53 + 1), str(-(2**53) - 1), "1.0e16"],
)
def test_whole_numbers_beyond_exact_floats_are_refused(value):
    frame = pd.DataFrame({"followers": ["100", value]})
    with pytest.raises(
        CSVCheckError, match=r"src: row 1 \(line 3\), column 'followers': .* beyond 9,007,199"
    ):
        check_whole_numbers(frame, ["followers"], "src")


def test_exact_values_and_other_defects_pass_through():
    frame = pd.DataFrame({"followers": [str(2**53), "12", " 7 ", "", "abc", "1.5", "nan"]})
    check_whole_numbers(frame, ["followers", "absent"], "src")  # the pool's own checks name the rest
    check_whole_numbers(
        pd.DataFrame({"followers": np.array([1, 2**53], dtype=np.int64)}), ["followers"], "src"
    )
    with pytest.raises(CSVCheckError, match="row 1"):
        check_whole_numbers(
            pd.DataFrame({"followers": np.array([1, 2**62], dtype=np.int64)}), ["followers"], "src"
        )


def test_the_defects_are_real_without_the_check():
    """What reading the CSV through floats does to the values the check refuses."""
    values = pd.to_numeric(pd.Series([str(2**53 + 1), str(2**63)]), errors="coerce").to_numpy(dtype=float)
    assert int(values[0]) != 2**53 + 1  # rounded
    with np.errstate(invalid="ignore"):
        assert values.astype(np.int64)[1] == np.iinfo(np.int64).min  # wrapped
    assert LARGEST_EXACT_INTEGER == 2**53


def test_a_quoted_header_is_read_as_csv(tmp_path):
    check_csv_bytes(_write(tmp_path, b'"influencer_id","platform"\n'))
    with pytest.raises(CSVCheckError, match="also column 1"):
        check_csv_bytes(_write(tmp_path, b'"influencer_id","influencer_id"\n'))


HEADER = "influencer_id,platform,followers,engagement_rate,primary_category,price\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (HEADER + "a,instagram,1e308,0.03,beauty,100\n", "2\\*\\*53"),
        (HEADER + "a,instagram,9223372036854775808,0.03,beauty,100\n", "2\\*\\*53"),
        (HEADER + "a,instagram,9007199254740993,0.03,beauty,100\n", "2\\*\\*53"),
        (HEADER.replace("price", "followers,price") + "a,instagram,1,2,0.03,beauty,100\n", "also column"),
        ((HEADER + "caf\xe9,instagram,1000,0.03,beauty,100\n").encode("latin-1"), "not UTF-8"),
    ],
)
def test_read_csv_runs_the_checks(tmp_path, content, message):
    from envs.population import InfluencerPool, PoolValidationError

    path = tmp_path / "pool.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(PoolValidationError, match=message):
        InfluencerPool.read_csv(path, np.random.default_rng(0))


def test_read_csv_says_what_a_path_is(tmp_path):
    from envs.population import InfluencerPool, PoolValidationError

    with pytest.raises(PoolValidationError, match="is a folder"):
        InfluencerPool.read_csv(tmp_path)
    with pytest.raises(PoolValidationError, match="no such file"):
        InfluencerPool.read_csv(tmp_path / "missing.csv")
