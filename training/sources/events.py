"""Click logs: JSONL, CSV or MIND behaviors.tsv into an EventLog sorted by time."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from recommender.domain import CLICK, IMPRESSION, is_valid_id
from training.sources.columns import CLICKS, ColumnMap, Columns, mapped_rows
from training.sources.common import (
    SHOWN,
    BadRow,
    RowError,
    is_number,
    parse_id,
    parse_time,
    show,
    start,
)


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
    unknown_distinct_ids: int = 0
    """Distinct article ids among the events ignored as unknown (for the click-log gate)."""
    columns: dict[str, str] = field(default_factory=dict)
    """field -> the log's columns that fed it (empty for MIND's fixed columns)."""
    bad_row_count: int = 0
    """Every skipped row (bad_rows lists the first ones)."""
    unused_columns: list[str] = field(default_factory=list)
    """Columns found that feed no field."""

    def __len__(self) -> int:
        return len(self.article_ids)

    @property
    def clicks(self) -> int:
        """Number of click events."""
        return int(np.count_nonzero(self.is_click))


def _event(
    row: Mapping[str, Any], columns: Columns, valid: set[str]
) -> tuple[str, float, bool, str]:
    article_id, key = columns.cell(row, "article_id")
    if article_id.__class__ is not str or article_id not in valid:  # cache: skip the regex
        article_id = parse_id(article_id, key)
        valid.add(article_id)
    ts, key = columns.cell(row, "ts")
    if ts is None:
        raise BadRow(f"{key}: missing")
    try:
        seconds = parse_time(ts)
    except ValueError as e:
        raise BadRow(f"{key}: {e}") from None
    kind, key = columns.cell(row, "type")
    if kind is None or kind in (CLICK, IMPRESSION):
        click = kind != IMPRESSION
    else:
        norm = kind.strip().lower() if isinstance(kind, str) else kind
        if norm not in (CLICK, IMPRESSION):
            raise BadRow(f"{key}: expected {CLICK!r} or {IMPRESSION!r}, got {show(kind)}")
        click = norm != IMPRESSION
    session, key = columns.cell(row, "session_id")
    if session.__class__ is str:
        return article_id, seconds, click, session.strip()
    if session is not None and not is_number(session):
        raise BadRow(f"{key}: expected a string, got {show(session)}")
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
        raise BadRow(
            f"time: cannot parse {show(text)} (expected MM/DD/YYYY HH:MM:SS AM/PM)"
        ) from None
    return stamp.timestamp()


def _mind_events(cells: list[str], valid: set[str]) -> list[tuple[str, float, bool, str]]:
    if len(cells) != 5:
        raise BadRow(
            "expected 5 tab-separated columns (impression_id, user_id, time, history,"
            f" impressions), got {len(cells)}"
        )
    seconds, user = _mind_time(cells[2]), cells[1].strip()
    events: list[tuple[str, float, bool, str]] = []
    for token in cells[4].split():
        news_id, dash, label = token.rpartition("-")
        if not dash or label not in ("0", "1") or not (news_id in valid or is_valid_id(news_id)):
            raise BadRow(f"impressions: bad entry {show(token)} (expected <news_id>-1 or -0)")
        valid.add(news_id)
        events.append((news_id, seconds, False, user))  # shown ...
        if label == "1":
            events.append((news_id, seconds, True, user))  # ... and clicked
    if not events:
        raise BadRow("impressions: empty")
    return events


def read_events(
    path: Path | str,
    fmt: str = "auto",
    known_ids: Collection[str] | None = None,
    max_bad_rows: int = 0,
    mapping: ColumnMap | None = None,
) -> EventLog:
    """Read a click log (jsonl, csv or MIND behaviors.tsv) into events sorted by time; mapping
    names the columns of fields the recognised names miss (columns.py)."""
    path, kind, errors = start(path, fmt, max_bad_rows)
    known = known_ids if isinstance(known_ids, set | frozenset | None) else set(known_ids)
    valid: set[str] = set()  # ids already checked by is_valid_id
    events: list[tuple[str, float, bool, str]] = []
    columns, found, rows = mapped_rows(path, kind, errors, CLICKS, mapping or {})
    for line, row in rows:
        try:
            if kind == "mind":
                events.extend(_mind_events(row, valid))
            else:
                events.append(_event(row, columns, valid))
        except BadRow as e:
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
        list(dict.fromkeys(unknown))[:SHOWN],
        str(path),
        kind,
        len(set(unknown)),
        columns.used(found),
        errors.count,
        columns.unused(found),
    )
