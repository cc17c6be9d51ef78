"""Readers for article exports and click logs (JSONL, CSV, MIND TSV) with row-level errors."""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
import numpy.typing as npt

from recommender.domain import CLICK, IMPRESSION, Article, is_valid_id

FORMATS = ("jsonl", "csv", "mind")
_SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "mind"}
_SECTION_KEYS = ("section", "sections", "category", "categories")
_DATE_KEYS = ("published_at", "date", "published")
_SHOWN = 5  # bad rows listed in an InputError; also the number of unknown-id examples kept
_JSON = json.JSONDecoder()
_BOM = "\ufeff"
_MAX_EPOCH = 1e11  # epoch seconds this large (year ~5100) are almost certainly milliseconds


class InputError(Exception):
    """Bad input that stops the run; str() names file:line and what was wrong."""


@dataclass(frozen=True)
class RowError:
    """One skipped input row: where it is and what was wrong with it."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class ArticleSet:
    """Articles read from one export, plus the rows that were skipped."""

    articles: list[Article]
    bad_rows: list[RowError]
    path: str
    format: str


@dataclass(eq=False)
class EventLog:
    """Click/impression events read from one log, sorted by time (stable)."""

    article_ids: list[str]
    ts: npt.NDArray[np.float64]
    is_click: npt.NDArray[np.bool_]
    sessions: list[str]
    bad_rows: list[RowError]
    unknown_ids: int
    unknown_id_examples: list[str]
    path: str
    format: str

    def __len__(self) -> int:
        return len(self.article_ids)

    @property
    def clicks(self) -> int:
        """Number of click events."""
        return int(np.count_nonzero(self.is_click))


class _Bad(Exception):
    """Internal: the current row is bad; the message says why."""


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _is_number(value: object) -> TypeGuard[float]:
    cls = value.__class__  # not isinstance: bool is an int but not a number here
    return cls is float or cls is int or isinstance(value, np.integer | np.floating)


class _Errors:
    """Collects bad rows; checked() raises InputError when there are more than allowed."""

    def __init__(self, path: Path, max_bad_rows: int) -> None:
        if max_bad_rows < 0:
            raise ValueError(f"max_bad_rows must be >= 0, got {max_bad_rows}")
        self.path, self.max_bad_rows, self.count = str(path), max_bad_rows, 0
        self.rows: list[RowError] = []

    def add(self, line: int, message: str) -> None:
        self.count += 1
        if len(self.rows) < max(self.max_bad_rows, _SHOWN):
            self.rows.append(RowError(self.path, line, message))

    def checked(self) -> list[RowError]:
        if self.count <= self.max_bad_rows:
            return self.rows
        listed = "".join(f"\n  {e}" for e in self.rows[:_SHOWN])
        more = f"\n  ... and {self.count - _SHOWN} more" if self.count > _SHOWN else ""
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
        raise ValueError(f"time {_show(value)} is not a finite number")
    if abs(seconds) >= _MAX_EPOCH:
        raise ValueError(f"time {_show(value)} is out of range for epoch seconds (milliseconds?)")
    return seconds


def parse_time(value: object) -> float:
    """Parse an RFC 3339 string or epoch seconds (number or numeric string) to UTC epoch seconds."""
    if _is_number(value):
        return _checked_epoch(float(value), value)
    if not isinstance(value, str):
        raise ValueError(
            f"cannot parse time {_show(value)}: expected an RFC 3339 string or epoch seconds,"
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
            f"cannot parse time {_show(value)}: expected RFC 3339"
            " (e.g. 2024-05-01T09:30:00Z) or epoch seconds"
        ) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _start(path: Path | str, fmt: str, max_bad_rows: int) -> tuple[Path, str, _Errors]:
    path = Path(path)
    kind = detect_format(path, fmt)
    if not path.is_file():
        raise InputError(f"{path}: {'not a regular file' if path.exists() else 'no such file'}")
    return path, kind, _Errors(path, max_bad_rows)


def _json_object(text: str) -> dict[str, Any]:
    try:
        obj, end = _JSON.raw_decode(text)  # ~2x faster than json.loads for short lines
        if end != len(text):
            raise json.JSONDecodeError("Extra data", text, end)
    except json.JSONDecodeError as e:
        raise _Bad(f"invalid JSON: {e.msg} at column {e.colno}") from None
    if not isinstance(obj, dict):
        raise _Bad(f"expected a JSON object, got {type(obj).__name__} {_show(obj)}")
    return obj


def _csv_rows(
    path: Path, errors: _Errors, required: tuple[str, ...]
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line where the record starts, {lowercased header name: cell}) per CSV record."""
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 24))  # long article bodies
    header: list[str] | None = None
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
                if not any(cell.strip() for cell in cells):
                    continue
                if header is None:
                    header = [cell.strip().lower() for cell in cells]
                    if missing := [name for name in required if name not in header]:
                        raise InputError(
                            f"{path}:{start}: CSV header has no {', '.join(missing)} column"
                            f" (found: {', '.join(header)})"
                        )
                elif len(cells) != len(header):
                    errors.add(start, f"expected {len(header)} columns, got {len(cells)}")
                else:
                    yield start, dict(zip(header, cells, strict=True))
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not valid UTF-8 text ({e.reason})") from e
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from e


def _ident(value: object, key: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if _blank(value):
        raise _Bad(f"{key}: missing")
    if not isinstance(value, str):
        raise _Bad(f"{key}: expected a string, got {_show(value)}")
    ident = value.strip()
    if not is_valid_id(ident):
        raise _Bad(f"{key}: invalid id {_show(value)} (need 1-128 of A-Z a-z 0-9 . _ : ~ -)")
    return ident


def _text(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None or _is_number(value):
        return "" if value is None else str(value)
    if isinstance(value, str):
        return value.strip()
    raise _Bad(f"{key}: expected a string, got {_show(value)}")


def _names(value: object, key: str) -> tuple[str, ...]:
    """Parse a list, a JSON-list string or a '|'-separated string; strip, drop empties, dedupe."""
    items: list[Any]
    if value is None:
        return ()
    if isinstance(value, str):
        text, parsed = value.strip(), None
        if text.startswith("[") and text.endswith("]"):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
        items = parsed if isinstance(parsed, list) else text.split("|")
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise _Bad(f"{key}: expected a string or a list of strings, got {_show(value)}")
    out: dict[str, None] = {}
    for item in items:
        if not isinstance(item, str) and not _is_number(item):
            raise _Bad(f"{key}: expected strings, got {_show(item)} in {_show(value)}")
        if name := str(item).strip():
            # Interned: a few hundred names repeat across a million articles (~200 MB as copies).
            out[sys.intern(name)] = None
    return tuple(out)


def _article(row: Mapping[str, Any]) -> Article:
    ident = _ident(row.get("id"), "id")
    title, body = _text(row, "title"), _text(row, "body")
    if not title and not body:
        raise _Bad(f"no title and no body for id {_show(ident)}")
    sections: tuple[str, ...] = ()
    for key in _SECTION_KEYS:
        if sections := _names(row.get(key), key):
            break
    published: float | None = None
    for key in _DATE_KEYS:
        if not _blank(value := row.get(key)):
            try:
                published = parse_time(value)
            except ValueError as e:
                raise _Bad(f"{key}: {e}") from None
            break
    tags = _names(row.get("tags"), "tags")
    return Article(ident, title, body, sections, tags, _text(row, "url"), published)


def _mind_article(cells: list[str]) -> Article:
    if len(cells) < 5:
        raise _Bad(f"expected 8 tab-separated columns (at least 5), got {len(cells)}")
    ident = _ident(cells[0], "news_id")
    category, subcategory, title, abstract = (c.strip() for c in cells[1:5])
    if not title and not abstract:
        raise _Bad(f"no title and no abstract for id {_show(ident)}")
    sections, tags = (category,) if category else (), (subcategory,) if subcategory else ()
    url = cells[5].strip() if len(cells) > 5 else ""
    return Article(ident, title, abstract, sections, tags, url, None)


def _records(
    path: Path, kind: str, errors: _Errors, required: tuple[str, ...]
) -> Iterator[tuple[int, Any]]:
    """Yield (line, row): a dict for jsonl/csv, a list of cells for mind; broken rows -> errors."""
    if kind == "csv":
        yield from _csv_rows(path, errors, required)
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
                except _Bad as e:
                    errors.add(line, str(e))
                else:
                    yield line, row
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from e


def read_articles(path: Path | str, fmt: str = "auto", max_bad_rows: int = 0) -> ArticleSet:
    """Read an article export (jsonl, csv or MIND news.tsv), skipping at most max_bad_rows rows."""
    path, kind, errors = _start(path, fmt, max_bad_rows)
    articles: list[Article] = []
    first_line: dict[str, int] = {}
    build = _mind_article if kind == "mind" else _article
    for line, row in _records(path, kind, errors, ("id",)):
        try:
            article = build(row)
        except _Bad as e:
            errors.add(line, str(e))
            continue
        first = first_line.setdefault(article.id, line)
        if first != line:
            errors.add(line, f"id: duplicate {_show(article.id)} (first on line {first})")
        else:
            articles.append(article)
    bad_rows = errors.checked()
    if not articles:
        skipped = f" ({errors.count} bad row(s) skipped)" if errors.count else ""
        raise InputError(f"{path}: no articles found{skipped}")
    return ArticleSet(articles, bad_rows, str(path), kind)


def _event(row: Mapping[str, Any], valid: set[str]) -> tuple[str, float, bool, str]:
    article_id = row.get("article_id")
    if article_id.__class__ is not str or article_id not in valid:  # cache: skip the regex
        article_id = _ident(article_id, "article_id")
        valid.add(article_id)
    ts = row.get("ts")
    if ts is None or ts == "":
        raise _Bad("ts: missing")
    try:
        seconds = parse_time(ts)
    except ValueError as e:
        raise _Bad(f"ts: {e}") from None
    kind = row.get("type")
    if kind is None or kind in (CLICK, IMPRESSION):
        click = kind != IMPRESSION
    else:
        norm = kind.strip().lower() if isinstance(kind, str) else kind
        if norm not in (CLICK, IMPRESSION, ""):
            raise _Bad(f"type: expected {CLICK!r} or {IMPRESSION!r}, got {_show(kind)}")
        click = norm != IMPRESSION
    session = row.get("session_id")
    if session.__class__ is str:
        return article_id, seconds, click, session.strip()
    if session is not None and not _is_number(session):
        raise _Bad(f"session_id: expected a string, got {_show(session)}")
    return article_id, seconds, click, "" if session is None else str(session)


def _mind_time(text: str) -> float:
    try:
        day, clock, half = text.split()
        month, mday, year = day.split("/")
        hh, mm, ss = clock.split(":")
        hour, half = int(hh), half.upper()
        if not 1 <= hour <= 12 or half not in ("AM", "PM"):
            raise ValueError(text)
        hour = hour % 12 + (12 if half == "PM" else 0)
        stamp = datetime(int(year), int(month), int(mday), hour, int(mm), int(ss), tzinfo=UTC)
    except ValueError:
        raise _Bad(
            f"time: cannot parse {_show(text)} (expected MM/DD/YYYY HH:MM:SS AM/PM)"
        ) from None
    return stamp.timestamp()


def _mind_events(cells: list[str], valid: set[str]) -> list[tuple[str, float, bool, str]]:
    if len(cells) != 5:
        raise _Bad(
            "expected 5 tab-separated columns (impression_id, user_id, time, history,"
            f" impressions), got {len(cells)}"
        )
    seconds, user = _mind_time(cells[2]), cells[1].strip()
    events: list[tuple[str, float, bool, str]] = []
    for token in cells[4].split():
        news_id, dash, label = token.rpartition("-")
        if not dash or label not in ("0", "1") or not (news_id in valid or is_valid_id(news_id)):
            raise _Bad(f"impressions: bad entry {_show(token)} (expected <news_id>-1 or -0)")
        valid.add(news_id)
        events.append((news_id, seconds, False, user))  # shown ...
        if label == "1":
            events.append((news_id, seconds, True, user))  # ... and clicked
    if not events:
        raise _Bad("impressions: empty")
    return events


def read_events(
    path: Path | str,
    fmt: str = "auto",
    known_ids: Collection[str] | None = None,
    max_bad_rows: int = 0,
) -> EventLog:
    """Read a click log (jsonl, csv or MIND behaviors.tsv) into events sorted by time."""
    path, kind, errors = _start(path, fmt, max_bad_rows)
    known = known_ids if isinstance(known_ids, set | frozenset | None) else set(known_ids)
    valid: set[str] = set()  # ids already checked by is_valid_id
    events: list[tuple[str, float, bool, str]] = []
    for line, row in _records(path, kind, errors, ("article_id", "ts")):
        try:
            if kind == "mind":
                events.extend(_mind_events(row, valid))
            else:
                events.append(_event(row, valid))
        except _Bad as e:
            errors.add(line, str(e))
    bad_rows = errors.checked()
    unknown: list[str] = []
    if known is not None:
        unknown = [event[0] for event in events if event[0] not in known]
        events = [event for event in events if event[0] in known]
    events.sort(key=itemgetter(1))  # stable; nearly free when the log is already in order
    ids, ts, clicks, sessions = zip(*events, strict=True) if events else ((), (), (), ())
    return EventLog(
        list(ids),
        np.array(ts, dtype=np.float64),
        np.array(clicks, dtype=np.bool_),
        list(sessions),
        bad_rows,
        len(unknown),
        list(dict.fromkeys(unknown))[:_SHOWN],
        str(path),
        kind,
    )
