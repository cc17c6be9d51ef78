"""What the readers share: the input error types, format detection, times, and the rows of a
JSONL, CSV or MIND TSV file with row-level errors (`file:line: what was wrong`)."""

from __future__ import annotations

import bisect
import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from recommender.domain import is_valid_id

FORMATS = ("jsonl", "csv", "mind")


_SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "mind"}


SHOWN = 5  # bad rows listed in an InputError; also the number of unknown-id examples kept


KEPT = 1000  # bad rows kept to list (every one is counted)


_JSON = json.JSONDecoder()


_BOM = "\ufeff"


MAX_EPOCH = 1e11  # epoch seconds this large (year ~5100) are almost certainly milliseconds


class InputError(ValueError):
    """Bad input that stops the run; str() names file:line and what was wrong."""


@dataclass(frozen=True)
class RowError:
    """One skipped input row: where it is and what was wrong with it."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class BadRow(Exception):
    """Internal: the current row is bad; the message says why."""


def show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def is_number(value: object) -> TypeGuard[float]:
    cls = value.__class__  # not isinstance: bool is an int but not a number here
    return cls is float or cls is int or isinstance(value, np.integer | np.floating)


def _line(error: RowError) -> int:
    return error.line


class RowErrors:
    """Collects bad rows; checked() raises InputError when there are more than allowed."""

    def __init__(self, path: Path, max_bad_rows: int) -> None:
        if max_bad_rows < 0:
            raise ValueError(f"max_bad_rows must be >= 0, got {max_bad_rows}")
        self.path, self.max_bad_rows, self.count = str(path), max_bad_rows, 0
        self.rows: list[RowError] = []

    def add(self, line: int, message: str) -> None:
        """Count the row; keep the first rows by line (a JSONL file's first rows are read
        ahead for its keys, so their errors can come before those of earlier rows)."""
        self.count += 1
        cap = max(min(self.max_bad_rows, KEPT), SHOWN)
        if len(self.rows) < cap or line < self.rows[-1].line:
            bisect.insort(self.rows, RowError(self.path, line, message), key=_line)
            del self.rows[cap:]

    def checked(self) -> list[RowError]:
        """The rows kept, in line order; InputError when there are more than allowed."""
        if self.count <= self.max_bad_rows:
            return self.rows
        listed = "".join(f"\n  {e}" for e in self.rows[:SHOWN])
        more = f"\n  ... and {self.count - SHOWN} more" if self.count > SHOWN else ""
        raise InputError(
            f"{self.path}: {self.count} bad row(s), more than --max-bad-rows {self.max_bad_rows}"
            f" allows:{listed}{more}\nFix them, or rerun with --max-bad-rows {self.count}"
            " to skip them."
        )


def detect_format(path: Path | str, fmt: str = "auto") -> str:
    """Return "jsonl", "csv" or "mind" for an explicit fmt or, with "auto", the file's suffix."""
    fmt = fmt.strip().lower()
    if fmt in FORMATS:
        return fmt
    if fmt != "auto":
        raise InputError(f"{path}: unknown format {fmt!r} (accepted: auto, {', '.join(FORMATS)})")
    kind = _SUFFIXES.get(Path(path).suffix.lower())
    if kind is None:
        raise InputError(
            f"{path}: cannot tell the format from the file name; accepted: .jsonl/.json/.ndjson"
            " (jsonl), .csv (csv), .tsv (mind), or pass the format explicitly"
        )
    return kind


def _checked_epoch(seconds: float, value: object) -> float:
    if not math.isfinite(seconds):
        raise ValueError(f"time {show(value)} is not a finite number")
    if abs(seconds) >= MAX_EPOCH:
        raise ValueError(f"time {show(value)} is out of range for epoch seconds (milliseconds?)")
    return seconds


def parse_time(value: object) -> float:
    """Parse an RFC 3339 string or epoch seconds (number or numeric string) to UTC epoch seconds."""
    if is_number(value):
        return _checked_epoch(float(value), value)
    if not isinstance(value, str):
        raise ValueError(
            f"cannot parse time {show(value)}: expected an RFC 3339 string or epoch seconds,"
            f" got {type(value).__name__}"
        )
    text = value.strip()
    if not text:
        raise ValueError("time is empty")
    if text[4:5] != "-" and (text[0].isdigit() or text[0] in "+-."):  # not YYYY-...
        try:
            seconds = float(text)
        except ValueError:
            pass
        else:
            return _checked_epoch(seconds, value)
    try:
        parsed = datetime.fromisoformat(text.upper())
    except ValueError:
        raise ValueError(
            f"cannot parse time {show(value)}: expected RFC 3339"
            " (e.g. 2024-05-01T09:30:00Z) or epoch seconds"
        ) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def start(path: Path | str, fmt: str, max_bad_rows: int) -> tuple[Path, str, RowErrors]:
    path = Path(path)
    kind = detect_format(path, fmt)
    if not path.is_file():
        raise InputError(f"{path}: {'not a regular file' if path.exists() else 'no such file'}")
    return path, kind, RowErrors(path, max_bad_rows)


def _json_object(text: str) -> dict[str, Any]:
    try:
        obj, end = _JSON.raw_decode(text)  # ~2x faster than json.loads for short lines
        if end != len(text):
            raise json.JSONDecodeError("Extra data", text, end)
    except json.JSONDecodeError as e:
        raise BadRow(f"invalid JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(obj, dict):
        raise BadRow(f"expected a JSON object, got {type(obj).__name__} {show(obj)}")
    return obj


def _csv_records(path: Path, errors: RowErrors) -> Iterator[tuple[int, list[str]]]:
    """Yield (line where the record starts, cells) per non-empty CSV record, the header first."""
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 24))  # long article bodies
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, strict=True)  # strict: a stray quote is an error, not data
            while True:
                start = reader.line_num + 1
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as e:  # the reader resumes at the next line
                    errors.add(start, f"broken CSV record: {e}")
                    continue
                if any(cell.strip() for cell in cells):
                    yield start, cells
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not valid UTF-8 text ({e.reason})") from e
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from e


def csv_dicts(
    rows: Iterator[tuple[int, list[str]]], header: list[str], errors: RowErrors
) -> Iterator[tuple[int, dict[str, str]]]:
    """The records after the header as {column: cell}; a record of another width is bad."""
    for line, cells in rows:
        if len(cells) != len(header):
            errors.add(line, f"expected {len(header)} columns, got {len(cells)}")
        else:
            yield line, dict(zip(header, cells, strict=True))


def records(path: Path, kind: str, errors: RowErrors) -> Iterator[tuple[int, Any]]:
    """Yield (line, row): a dict for jsonl, a list of cells for csv (the header first) and
    mind; broken rows -> errors."""
    if kind == "csv":
        yield from _csv_records(path, errors)
        return
    try:
        with path.open("rb") as f:
            for line, raw in enumerate(f, 1):
                try:
                    text = raw.decode().lstrip(_BOM) if line == 1 else raw.decode()
                    if text.isspace() or not text:
                        continue
                    row: Any = (
                        _json_object(text.strip())
                        if kind == "jsonl"
                        else text.rstrip("\r\n").split("\t")
                    )
                except UnicodeDecodeError:
                    errors.add(line, "not valid UTF-8 text")
                except BadRow as e:
                    errors.add(line, str(e))
                else:
                    yield line, row
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from e


def parse_id(value: object, key: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if blank(value):
        raise BadRow(f"{key}: missing")
    if not isinstance(value, str):
        raise BadRow(f"{key}: expected a string, got {show(value)}")
    ident = value.strip()
    if not is_valid_id(ident):
        raise BadRow(f"{key}: invalid id {show(value)} (need 1-128 of A-Z a-z 0-9 . _ : ~ -)")
    return ident


def text_value(value: object, key: str) -> str:
    """A text cell as a stripped string (numbers as written); `key` names it in errors."""
    if value is None or is_number(value):
        return "" if value is None else str(value)
    if isinstance(value, str):
        return value.strip()
    raise BadRow(f"{key}: expected a string, got {show(value)}")
