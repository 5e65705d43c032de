"""Checks of an influencer CSV that pandas cannot make once it has parsed the file.

:func:`check_csv_bytes` looks at the file itself: every byte must be UTF-8 (the message names the line
and column of the first that is not), and the header must name each column once (pandas silently renames
a second ``followers``, or a `` followers`` that ``skipinitialspace`` makes equal to it, to
``followers.1``, so the check for a duplicate never fires) and without trailing spaces.

:func:`check_whole_numbers` looks at integer columns (``followers``): every value must be a whole number
that a float holds exactly (at most 2**53), since the pool reads numbers through floats and stores
``int64``; a 30-digit number, ``1e308`` or 2**63 would otherwise be written back as
-9223372036854775808, and 2**53 + 1 silently rounded.

Both raise :class:`CSVCheckError` (a ``ValueError``) naming the file, the row (0-based data row and
1-based line, as the pool's other messages do) and the column.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["LARGEST_EXACT_INTEGER", "CSVCheckError", "check_csv_bytes", "check_whole_numbers"]

#: Floats hold every whole number up to 2**53 exactly, and not every one beyond.
LARGEST_EXACT_INTEGER = 2**53

_EMPTY = ("", "nan", "NaN", "NA", "None")


class CSVCheckError(ValueError):
    """A CSV defect; the message names the file, row and column."""


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def check_csv_bytes(path: str | Path, data: bytes | None = None) -> None:
    """Refuse a CSV with a byte that is not UTF-8, or a header naming a column twice (spaces around the
    names ignored) or with spaces after a name.

    Parameters
    ----------
    path : path
        The file (named in messages; read unless ``data`` is given).
    data : bytes, optional
        The file's content, when already read.
    """
    path = Path(path)
    if data is None:
        data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark (Excel writes one): fine
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise CSVCheckError(
            f"{path}: line {line}, column {column}: byte 0x{data[err.start : err.start + 1].hex()} is not "
            "UTF-8 (the file may be Latin-1 or Windows-1252); save it as UTF-8"
        ) from None
    try:
        header = next(csv.reader(io.StringIO(text)), [])
    except csv.Error as err:
        raise CSVCheckError(f"{path}: line 1 (the header): not readable as CSV ({err})") from None
    seen: dict[str, int] = {}
    for position, raw in enumerate(header, start=1):
        name = raw.strip()
        if raw != raw.rstrip():
            raise CSVCheckError(
                f"{path}: line 1 (the header), column {position} '{_shorten(raw)}': spaces after the column "
                f"name; write it as '{_shorten(name)}'"
            )
        if name and name in seen:
            raise CSVCheckError(
                f"{path}: line 1 (the header), column {position} '{_shorten(raw)}': the column '{_shorten(name)}' "
                f"is also column {seen[name]}; give each column once"
            )
        seen.setdefault(name, position)


def check_whole_numbers(frame: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    """Refuse a value of ``columns`` (those present in ``frame``) that is not a whole number a float
    holds exactly (|value| <= :data:`LARGEST_EXACT_INTEGER`). Empty values are left to the caller.

    Parameters
    ----------
    frame : DataFrame
        The CSV as read, values as text (``dtype=str``) or numbers.
    columns : sequence of str
        The integer columns (``("followers",)`` for the influencer CSV).
    source : str
        Named in messages (the path).
    """
    for column in columns:
        if column not in frame.columns:
            continue
        values = frame[column]
        if pd.api.types.is_integer_dtype(values.dtype):
            numbers = values.to_numpy()
            bad = np.flatnonzero(np.abs(numbers.astype(object)) > LARGEST_EXACT_INTEGER)
            if bad.size:
                _fail(source, int(bad[0]), column, str(numbers[bad[0]]))
            continue
        for row, value in enumerate(values.tolist()):
            _check_whole(value, source, row, column)


def _check_whole(value: object, source: str, row: int, column: str) -> None:
    text = str(value).strip()
    if text in _EMPTY:
        return
    try:
        number = Decimal(text.replace("_", "x"))  # Decimal accepts "1_000"; a CSV value should not
    except InvalidOperation:
        return  # not a number at all: the pool's own check names it
    if not number.is_finite() or number != number.to_integral_value():
        return  # NaN, infinity and fractions: the pool's own checks name them
    if abs(number) > LARGEST_EXACT_INTEGER:
        _fail(source, row, column, text)


def _fail(source: str, row: int, column: str, text: str) -> None:
    raise CSVCheckError(
        f"{source}: row {row} (line {row + 2}), column '{column}': {_shorten(text)} is beyond "
        f"{LARGEST_EXACT_INTEGER:,} (2**53), the largest whole number read exactly; expected a follower "
        "count that size or smaller"
    )
