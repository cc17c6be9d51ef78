"""Which column of an export feeds which field: common CMS names are recognised (`headline` is
a title, `article_id` an id), `--map title=headline` names anything else, and a required field
that no column feeds is one error at the header that lists the columns found and suggests the
mapping, not a bad row per line.

CSV headers and JSONL keys are matched after normalising (`Article ID`, `articleId` and
`article_id` are the same name). A JSONL file has no header: its keys are those of its first
rows, and a row may still use any recognised name for an optional field.
"""

from __future__ import annotations

import difflib
import itertools
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.sources.common import InputError, RowErrors, blank, csv_dicts, records

ColumnMap = Mapping[str, str]
"""field -> column, from --map and the column_map setting."""

ARTICLE_FIELDS: dict[str, tuple[str, ...]] = {
    "id": ("id", "article_id", "articleid", "story_id", "post_id", "news_id", "content_id",
           "doc_id", "item_id", "guid", "uuid"),
    "title": ("title", "headline", "heading", "headline_text"),
    "body": ("body", "text", "content", "article_body", "body_text", "full_text", "summary",
             "abstract", "description", "excerpt", "standfirst", "lede"),
    "section": ("section", "sections", "category", "categories", "channel", "department",
                "desk", "vertical"),
    "tags": ("tags", "keywords", "topics", "labels", "subcategory", "subsection"),
    "url": ("url", "link", "permalink", "canonical_url", "web_url", "href"),
    "published_at": ("published_at", "date", "published", "pub_date", "publish_date",
                     "publication_date", "published_date", "pubdate", "date_published",
                     "first_published", "created_at", "created", "datetime", "timestamp",
                     "time"),
}  # fmt: skip
"""Each field of an article and the names it is recognised by, in order of preference."""

CLICK_FIELDS: dict[str, tuple[str, ...]] = {
    "article_id": ("article_id", "articleid", "item_id", "news_id", "story_id", "post_id",
                   "content_id", "doc_id", "page_id"),
    "ts": ("ts", "timestamp", "time", "event_time", "event_ts", "datetime", "date",
           "occurred_at", "clicked_at", "created_at"),
    "type": ("type", "event_type"),
    "session_id": ("session_id", "session", "user_id", "user", "visitor_id", "client_id",
                   "reader_id", "uid"),
}  # fmt: skip
"""Each field of a click-log event and the names it is recognised by."""


@dataclass(frozen=True)
class FieldSpec:
    """The fields of one kind of file and which of them must be fed."""

    what: str
    fields: Mapping[str, tuple[str, ...]]
    required: tuple[tuple[str, ...], ...]
    """Groups of fields; each group needs a column for at least one of its fields."""


FALLBACKS: dict[str, tuple[str, ...]] = {
    "body": ("body",),
    "section": ("section", "sections", "category", "categories"),
    "published_at": ("published_at", "date", "published"),
}
"""Fields whose row falls back to the next column found when the first is blank (a body from
the summary; sections and dates as newsrec always read them), with the keys a JSONL row was
always read by."""

ARTICLES = FieldSpec("article export", ARTICLE_FIELDS, (("id",), ("title", "body")))
CLICKS = FieldSpec("click log", CLICK_FIELDS, (("article_id",), ("ts",)))
ALL_FIELDS = (*ARTICLE_FIELDS, *CLICK_FIELDS)

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NOT_WORD = re.compile(r"[^a-z0-9]+")


def normalise(name: str) -> str:
    """`Article ID`, `articleId`, `article-id` -> `article_id`."""
    return _NOT_WORD.sub("_", _CAMEL.sub("_", name.strip()).lower()).strip("_")


def parse_map(text: str, where: str = "--map") -> dict[str, str]:
    """`title=headline,body=text` -> {"title": "headline", "body": "text"}."""
    mapping: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        field, eq, column = (part.strip() for part in pair.partition("="))
        if not eq or not field or not column:
            raise InputError(f"{where}: {pair!r} is not FIELD=COLUMN (e.g. title=headline)")
        if field not in ALL_FIELDS:
            raise InputError(
                f"{where}: unknown field {field!r}; articles have {', '.join(ARTICLE_FIELDS)};"
                f" click logs have {', '.join(CLICK_FIELDS)}"
            )
        mapping[field] = column
    return mapping


def merged_map(setting: str, flags: Iterable[str] | None) -> dict[str, str]:
    """The column_map setting, then each --map flag over it."""
    mapping = parse_map(setting, "column_map setting")
    for flag in flags or ():
        mapping.update(parse_map(flag))
    return mapping


@dataclass(frozen=True)
class Columns:
    """Where each field of one file is read from: its columns in order of preference."""

    sources: Mapping[str, tuple[str, ...]]

    def cell(self, row: Mapping[str, Any], field: str) -> tuple[Any, str]:
        """(value, column) of the first column of `field` with a value in row, else (None, the
        field's first column or its name): the column names the cell in errors."""
        keys = self.sources.get(field, ())
        for key in keys:
            value = row.get(key)
            if not blank(value):
                return value, key
        return None, (keys[0] if keys else field)

    def cells(self, row: Mapping[str, Any], field: str) -> Iterator[tuple[Any, str]]:
        """(value, column) of each column of `field` with a value in row, in order."""
        for key in self.sources.get(field, ()):
            value = row.get(key)
            if not blank(value):
                yield value, key

    def used(self, found: Iterable[str]) -> dict[str, str]:
        """field -> the columns found in the file that feed it, for `newsrec check`."""
        present = set(found)
        return {
            field: ", ".join(k for k in keys if k in present)
            for field, keys in self.sources.items()
            if any(k in present for k in keys)
        }

    def unused(self, found: Iterable[str]) -> list[str]:
        """The columns found that feed no field (a --map may be missing)."""
        fed = {key for keys in self.sources.values() for key in keys}
        return [name for name in found if name not in fed]


def resolve(
    found: Sequence[str], spec: FieldSpec, mapping: ColumnMap, where: str, open_ended: bool
) -> Columns:
    """The Columns of a file whose header (or first rows' keys) are `found`, or one InputError
    naming every required field no column feeds. A field reads one column, the first of its
    names found (FALLBACKS: each found, in order); a mapped column feeds its field alone.
    open_ended (JSONL): a field the first rows lack reads the key newsrec always read."""
    by_name: dict[str, list[str]] = {}
    for name in found:
        by_name.setdefault(normalise(name), []).append(name)
    sources: dict[str, tuple[str, ...]] = {
        f: (_mapped(f, c, found, by_name, where),) for f, c in mapping.items() if f in spec.fields
    }
    taken = {keys[0] for keys in sources.values()}
    for field, aliases in spec.fields.items():
        if field in sources:
            continue
        keys = [n for alias in aliases for n in by_name.get(alias, ()) if n not in taken]
        if field not in FALLBACKS:
            keys = keys[:1]
        if open_ended:
            keys += [n for n in FALLBACKS.get(field, (field,)) if n not in keys and n not in taken]
        if keys:
            sources[field] = tuple(dict.fromkeys(keys))
    present = {field for field, keys in sources.items() if set(keys) & set(found)}
    missing = [group for group in spec.required if not present & set(group)]
    if missing:
        raise InputError(_missing_message(missing, spec, found, where))
    return Columns(sources)


def _mapped(
    field: str, column: str, found: Sequence[str], by_name: Mapping[str, list[str]], where: str
) -> str:
    if column in found:
        return column
    if names := by_name.get(normalise(column)):
        return names[0]
    raise InputError(
        f"{where}: --map {field}={column}: the file has no column {column!r}"
        f" (found: {', '.join(found) or 'none'})"
    )


def _missing_message(
    missing: list[tuple[str, ...]], spec: FieldSpec, found: Sequence[str], where: str
) -> str:
    """One message for every missing field: what was looked for, what was found, a --map."""
    lines = [f"{where}: the {spec.what} has no column for {_names(missing)}"]
    lines.append(f"  found: {', '.join(found) or 'no columns'}")
    suggestions = []
    for group in missing:
        for field in group:
            lines.append(f"  {field} is looked for as: {', '.join(spec.fields[field])}")
        guess = _guess(group[0], spec, found)
        suggestions.append(f"{group[0]}={guess}")
    lines.append(
        f"Name the columns with --map {shlex.quote(','.join(suggestions))}"
        " (or column_map in the settings file; docs/own-data.md)"
    )
    return "\n".join(lines)


def _names(missing: list[tuple[str, ...]]) -> str:
    return " and ".join(" or ".join(group) for group in missing)


def _guess(field: str, spec: FieldSpec, found: Sequence[str]) -> str:
    """The found column most like one of the field's names (and not another field's), else
    COLUMN."""
    known = {alias for aliases in spec.fields.values() for alias in aliases}
    unknown = {normalise(name): name for name in found if normalise(name) not in known}
    for alias in spec.fields[field]:
        if close := difflib.get_close_matches(alias, list(unknown), n=1, cutoff=0.6):
            return unknown[close[0]]
    return "COLUMN"


JSONL_SAMPLE = 100
"""A JSONL file's columns are the keys of its first this many rows."""


def mapped_rows(
    path: Path, kind: str, errors: RowErrors, spec: FieldSpec, mapping: ColumnMap
) -> tuple[Columns, list[str], Iterator[tuple[int, Any]]]:
    """The file's Columns, the columns found, and its rows: dicts for csv and jsonl (checked at
    the header, or the first rows, for the required fields), cell lists for MIND."""
    rows = records(path, kind, errors)
    if kind == "mind":
        if mapped := [f for f in mapping if f in spec.fields]:
            raise InputError(
                f"{path}: a column mapping ({', '.join(mapped)}: --map or column_map) applies to"
                " CSV and JSONL files; a MIND"
                " .tsv has fixed columns (pass --format csv for a tab-free CSV export)"
            )
        return Columns({}), [], rows
    if kind == "csv":
        first = next(rows, None)
        if first is None:
            return Columns({}), [], iter(())
        line, cells = first
        header = [cell.strip() for cell in cells]
        columns = resolve(header, spec, mapping, f"{path}:{line}", open_ended=False)
        return columns, header, csv_dicts(rows, header, errors)
    sample = list(itertools.islice(rows, JSONL_SAMPLE))
    found = list(dict.fromkeys(key for _, row in sample for key in row))
    where = f"{path}: (the keys of its first {len(sample)} row{'s' * (len(sample) > 1)})"
    columns = resolve(found, spec, mapping, where, open_ended=True) if sample else Columns({})
    return columns, found, itertools.chain(sample, rows)
