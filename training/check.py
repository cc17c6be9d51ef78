"""`newsrec check`: a dry run of what `newsrec train` would read, and whether it would publish.

It reads the export and the click log as training does (the same readers, mapping and bad-row
rule), fits nothing and writes nothing, and prints what it found: the columns used, counts,
sections and tags, dates, duplicates, bad rows with file:line, how much of the log matches the
export, and each gate's verdict. It exits 1 where training would stop, so a cron job can run it
before the nightly training.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from recommender.config import Settings, add_settings_flags, settings_from_args
from training.gates import ClickMatch, check_clicks, check_shrink
from training.sources.articles import ArticleSet, read_articles
from training.sources.columns import ARTICLE_FIELDS, CLICK_FIELDS, merged_map
from training.sources.common import InputError, RowError
from training.sources.events import EventLog, read_events

if TYPE_CHECKING:
    from training.live_state import LiveState

T = TypeVar("T")

LISTED = 10
"""Bad rows, sections and tags listed by name (all are counted)."""


def add_check(parser: argparse.ArgumentParser) -> None:
    """Flags of `newsrec check`: those of `newsrec train` that decide what is read."""
    from training.commands import add_gate_flags, add_input_flags

    add_settings_flags(parser)
    parser.add_argument("--articles", type=Path, required=True, help="article export")
    parser.add_argument("--clicks", type=Path, help="click log (JSONL/CSV/MIND behaviors.tsv)")
    add_input_flags(parser)
    add_gate_flags(parser)


@dataclass
class Report:
    """The printed lines and the reasons training would stop."""

    lines: list[str] = field(default_factory=list)
    stops: list[str] = field(default_factory=list)

    def add(self, label: str, text: str) -> None:
        self.lines.append(f"  {label:<11} {text}")


def run_check(args: argparse.Namespace) -> int:
    """Read both files as training would and print the report; 1 where training would stop."""
    if args.max_bad_rows < 0:
        raise InputError("--max-bad-rows must be >= 0")
    settings = settings_from_args(args)
    mapping = merged_map(settings.column_map, args.map)
    report = Report(["newsrec check: what `newsrec train` would read (nothing is fitted or"
                     " published)"])  # fmt: skip
    every = 1 << 62  # read past --max-bad-rows: list every bad row, then judge the count
    articles = _read(report, "articles", args.articles,
                     lambda: read_articles(args.articles, args.format, every, mapping))  # fmt: skip
    if articles is not None:
        describe_articles(report, articles, args.max_bad_rows)
    live = live_model(report, settings)
    corpus = None if articles is None else fold_live(report, articles, live)
    events = None
    if args.clicks is not None:
        known = None if corpus is None else set(corpus)
        read = lambda: read_events(args.clicks, args.format, known, every, mapping)  # noqa: E731
        events = _read(report, "clicks", args.clicks, read)
        if events is not None:
            describe_clicks(report, events, args.max_bad_rows, known is not None)
    gate_verdicts(report, args, settings, corpus, events, live)
    for line in report.lines:
        print(line)
    if report.stops:
        print(f"\n`newsrec train` would stop: {len(report.stops)} problem(s):")
        print("\n".join(f"  - {stop}" for stop in report.stops))
        return 1
    print("\n`newsrec train` would read these files and pass the gates checked here")
    return 0


@dataclass
class LiveModel:
    """What training folds in and compares with: the live state and the live model's size."""

    state: LiveState
    articles: int | None


def live_model(report: Report, settings: Settings) -> LiveModel | str:
    """The live state and model size from Redis, or why they were not read. An embedded Redis
    that is not running is not started for a dry run; a configured one that cannot be reached
    would stop training too."""
    import redis

    from recommender.connect import keys_for, sync_client
    from recommender.embedded import embedded_running
    from training.live_state import read_live_state
    from training.publish import live_articles

    embedded = not settings.redis_url and not settings.redis_cluster
    if embedded and not embedded_running(settings.data_dir):
        return "the embedded Redis is not running (`newsrec train` starts it)"
    try:
        client, keys = sync_client(settings, timeout=5.0), keys_for(settings)
        return LiveModel(read_live_state(client, keys), live_articles(client, keys))
    except (redis.RedisError, redis.exceptions.RedisClusterException, ValueError) as exc:
        report.stops.append(f"Redis: {exc}")
        return f"Redis: {exc}"


def fold_live(report: Report, found: ArticleSet, live: LiveModel | str) -> list[str]:
    """The ids training would train on: the export with live upserts in, takedowns out."""
    from training.live_state import merge_articles

    if isinstance(live, str):
        report.add("live state", f"not read: {live}")
        return [a.id for a in found.articles]
    merged, folded, dropped = merge_articles(found.articles, live.state)
    report.add("live state", f"{folded:,} live upserts folded in, {dropped:,} takedowns "
               f"dropped: {len(merged):,} articles to train on")  # fmt: skip
    return [a.id for a in merged]


def _read(report: Report, what: str, path: Path, read: Callable[[], T]) -> T | None:
    report.lines.append(f"\n{what}: {path}")
    try:
        return read()
    except InputError as exc:
        report.lines.extend(f"  {line}" for line in str(exc).splitlines())
        report.stops.append(f"{what}: {str(exc).splitlines()[0]}")
        return None


def describe_articles(report: Report, found: ArticleSet, max_bad_rows: int) -> None:
    """Columns, counts, sections, tags, dates and bad rows of the export."""
    arts = found.articles
    _columns(report, found.format, found.columns, found.unused_columns, ARTICLE_FIELDS)
    report.add("articles", f"{len(arts):,} read, {found.bad_row_count:,} bad row(s) "
               f"({found.duplicate_ids:,} of them duplicate ids)")  # fmt: skip
    sections = Counter(s.lower() for a in arts for s in a.sections)
    tags = Counter(t for a in arts for t in a.tags)
    unsectioned = sum(1 for a in arts if not a.sections)
    report.add("sections", _counted(sections) + (f"; {unsectioned:,} articles have none"
                                                 if unsectioned else ""))  # fmt: skip
    report.add("tags", _counted(tags))
    dates = [a.published_at for a in arts if a.published_at is not None]
    undated = len(arts) - len(dates)
    span = f"{_when(min(dates))} to {_when(max(dates))}" if dates else "no dates"
    report.add("published", span + (f" ({undated:,} without a date)" if undated else ""))
    short = sum(1 for a in arts if len(f"{a.title} {a.body}".split()) < 5)
    if short:
        report.add("short", f"{short:,} articles have fewer than 5 words: too little to relate")
    _bad_rows(report, "articles", found.bad_rows, found.bad_row_count, max_bad_rows)


def describe_clicks(report: Report, log: EventLog, max_bad_rows: int, matched: bool) -> None:
    """Columns, counts, time range, bad rows, and how much of the log matches the export."""
    _columns(report, log.format, log.columns, log.unused_columns, CLICK_FIELDS)
    total = len(log) + log.unknown_ids
    clicks = log.clicks  # of the matching events
    report.add("events", f"{total:,} read, {log.bad_row_count:,} bad row(s)")
    if len(log):
        report.add("time range", f"{_when(float(log.ts[0]))} to {_when(float(log.ts[-1]))} "
                   f"({(log.ts[-1] - log.ts[0]) / 86_400:.1f} days, matching events)")  # fmt: skip
    if matched:
        match = ClickMatch.of(log)
        ids = f"{match.matched_ids:,} of {match.ids:,}"
        report.add("matching", f"{_share(match.event_share)} of events ({len(log):,}; {clicks:,}"
                   f" clicks) and {_share(match.id_share)} of distinct article ids ({ids}) are "
                   "articles of the export")  # fmt: skip
        if log.unknown_id_examples:
            report.add("unknown ids", ", ".join(log.unknown_id_examples) + " ...")
    _bad_rows(report, "clicks", log.bad_rows, log.bad_row_count, max_bad_rows)


def gate_verdicts(
    report: Report,
    args: argparse.Namespace,
    settings: Settings,
    corpus: list[str] | None,
    events: EventLog | None,
    live: LiveModel | str,
) -> None:
    """Each training gate's verdict on what was read (the related gate needs fitted lists)."""
    from training.commands import gates_from_flags

    gates = gates_from_flags(settings, args)
    report.lines.append("\ngates (docs/training.md)")
    if events is not None and corpus is not None:
        _verdict(report, "click log", check_clicks(ClickMatch.of(events), gates))
    if isinstance(live, str):
        report.add("shrink", f"not checked: {live}")
    elif corpus is not None:
        _verdict(report, "shrink", check_shrink(len(corpus), live.articles, gates))
    report.add("related", "checked by `newsrec train` on the fitted lists")


def _verdict(report: Report, gate: str, refusal: str | None) -> None:
    report.add(gate, "pass" if refusal is None else f"REFUSES: {refusal}")
    if refusal is not None:
        report.stops.append(refusal)


def _columns(
    report: Report, fmt: str, used: dict[str, str], unused: list[str], fields: Iterable[str]
) -> None:
    if fmt == "mind":
        report.add("format", "MIND TSV (fixed columns)")
        return
    report.add("format", fmt)
    report.add("columns", ", ".join(f if c == f else f"{f} <- {c}" for f, c in used.items()))
    if missing := [f for f in fields if f not in used]:
        report.add("not found", ", ".join(missing))
    if unused:
        report.add("unused", f"{', '.join(unused)} (--map FIELD=COLUMN reads one)")


def _bad_rows(
    report: Report, what: str, rows: list[RowError], count: int, max_bad_rows: int
) -> None:
    for row in rows[:LISTED]:
        report.lines.append(f"    {row}")
    if count > LISTED:
        report.lines.append(f"    ... and {count - LISTED:,} more")
    if count > max_bad_rows:
        report.stops.append(
            f"{what}: {count:,} bad row(s), more than --max-bad-rows {max_bad_rows} allows"
            f" (fix them, or rerun with --max-bad-rows {count})"
        )


def _counted(counts: Counter[str]) -> str:
    if not counts:
        return "none"
    top = ", ".join(f"{name} {n:,}" for name, n in counts.most_common(LISTED))
    more = f", ... ({len(counts) - LISTED:,} more)" if len(counts) > LISTED else ""
    return f"{len(counts):,}: {top}{more}"


def _share(share: float) -> str:
    """A percentage that never rounds a part up to 100% (or down to 0%)."""
    if 0.999 < share < 1:
        return ">99.9%"
    return "<0.1%" if 0 < share < 0.001 else f"{share:.1%}"


def _when(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):  # a time before year 1 (epoch -9e10)
        return f"epoch {seconds:.0f}"
