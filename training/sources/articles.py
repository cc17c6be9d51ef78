"""Article exports: JSONL, CSV or MIND news.tsv into Articles, with row-level errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from recommender.domain import Article
from training.sources.columns import ARTICLES, ColumnMap, Columns, mapped_rows
from training.sources.common import (
    BadRow,
    InputError,
    RowError,
    is_number,
    parse_id,
    parse_time,
    show,
    start,
    text_value,
)


@dataclass
class ArticleSet:
    """Articles read from one export, plus the rows that were skipped."""

    articles: list[Article]
    bad_rows: list[RowError]
    path: str
    format: str
    columns: dict[str, str] = field(default_factory=dict)
    """field -> the file's columns that fed it (empty for MIND's fixed columns)."""
    bad_row_count: int = 0
    """Every skipped row (bad_rows lists the first ones)."""
    unused_columns: list[str] = field(default_factory=list)
    """Columns found that feed no field."""
    duplicate_ids: int = 0
    """Rows skipped because an earlier row had their id."""


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
        raise BadRow(f"{key}: expected a string or a list of strings, got {show(value)}")
    out: dict[str, None] = {}
    for item in items:
        if not isinstance(item, str) and not is_number(item):
            raise BadRow(f"{key}: expected strings, got {show(item)} in {show(value)}")
        if name := str(item).strip():
            # Interned: a few hundred names repeat across a million articles (~200 MB as copies).
            out[sys.intern(name)] = None
    return tuple(out)


def _article(row: Mapping[str, Any], columns: Columns) -> Article:
    ident = parse_id(*columns.cell(row, "id"))
    title, body = (text_value(*columns.cell(row, f)) for f in ("title", "body"))
    if not title and not body:
        raise BadRow(f"no title and no body for id {show(ident)}")
    sections = next(filter(None, (_names(*c) for c in columns.cells(row, "section"))), ())
    published: float | None = None
    value, key = columns.cell(row, "published_at")
    if value is not None:
        try:
            published = parse_time(value)
        except ValueError as e:
            raise BadRow(f"{key}: {e}") from None
    tags = _names(*columns.cell(row, "tags"))
    url = text_value(*columns.cell(row, "url"))
    return Article(ident, title, body, sections, tags, url, published)


def _mind_article(cells: list[str]) -> Article:
    if len(cells) < 5:
        raise BadRow(f"expected 8 tab-separated columns (at least 5), got {len(cells)}")
    ident = parse_id(cells[0], "news_id")
    category, subcategory, title, abstract = (c.strip() for c in cells[1:5])
    if not title and not abstract:
        raise BadRow(f"no title and no abstract for id {show(ident)}")
    sections, tags = (category,) if category else (), (subcategory,) if subcategory else ()
    url = cells[5].strip() if len(cells) > 5 else ""
    return Article(ident, title, abstract, sections, tags, url, None)


def read_articles(
    path: Path | str, fmt: str = "auto", max_bad_rows: int = 0, mapping: ColumnMap | None = None
) -> ArticleSet:
    """Read an article export (jsonl, csv or MIND news.tsv), skipping at most max_bad_rows rows;
    mapping names the columns of fields the recognised names miss (columns.py)."""
    path, kind, errors = start(path, fmt, max_bad_rows)
    articles: list[Article] = []
    first_line: dict[str, int] = {}
    duplicates = 0
    columns, found, rows = mapped_rows(path, kind, errors, ARTICLES, mapping or {})
    build = _mind_article if kind == "mind" else partial(_article, columns=columns)
    for line, row in rows:
        try:
            article = build(row)
        except BadRow as e:
            errors.add(line, str(e))
            continue
        first = first_line.setdefault(article.id, line)
        if first != line:
            duplicates += 1
            errors.add(line, f"id: duplicate {show(article.id)} (first on line {first})")
        else:
            articles.append(article)
    bad_rows = errors.checked()
    if not articles:
        skipped = f" ({errors.count} bad row(s) skipped)" if errors.count else ""
        raise InputError(f"{path}: no articles found{skipped}")
    return ArticleSet(
        articles,
        bad_rows,
        str(path),
        kind,
        columns=columns.used(found),
        bad_row_count=errors.count,
        unused_columns=columns.unused(found),
        duplicate_ids=duplicates,
    )
