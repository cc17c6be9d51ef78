"""Readers for article exports and click logs: every format, every bad-row kind, real MIND data."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from recommender.domain import Article
from training.sources.articles import ArticleSet, read_articles
from training.sources.common import InputError, RowError, detect_format, parse_time
from training.sources.events import EventLog, read_events

MIND = Path(__file__).resolve().parents[2] / "shared" / "data" / "mind-sample"
T0 = 1714555800.0  # 2024-05-01T09:30:00Z


def mind_file(name: str) -> Path:
    """A file of the real MIND sample, or skip saying why."""
    path = MIND / name
    if not path.exists():
        pytest.skip(f"real MIND sample not available: {path} is absent (../shared beside the repo)")
    return path


def write_lines(path: Path, lines: list[str]) -> Path:
    """Write lines verbatim (one per line) and return the path."""
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def jsonl(path: Path, rows: list[object]) -> Path:
    """Write each row as one JSON line (strings are written verbatim)."""
    return write_lines(path, [r if isinstance(r, str) else json.dumps(r) for r in rows])


# --- detect_format ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a.jsonl", "jsonl"),
        ("a.json", "jsonl"),
        ("a.NDJSON", "jsonl"),
        ("a.csv", "csv"),
        ("news.tsv", "mind"),
    ],
)
def test_detect_format_by_suffix(name: str, kind: str) -> None:
    assert detect_format(Path(name)) == kind


def test_explicit_format_overrides_the_suffix(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "export.txt", [{"id": "a", "title": "t"}])
    assert read_articles(path, fmt="jsonl").articles == [Article("a", "t")]
    with pytest.raises(InputError, match=r"export\.txt: cannot tell the format"):
        read_articles(path)


def test_detect_format_explicit_and_unknown() -> None:
    assert detect_format(Path("export.txt"), "csv") == "csv"
    with pytest.raises(InputError, match=r"export\.txt.*\.jsonl.*\.csv.*\.tsv"):
        detect_format(Path("export.txt"))
    with pytest.raises(InputError, match=r"unknown format 'xml'.*jsonl, csv, mind"):
        detect_format(Path("a.jsonl"), "xml")


# --- articles: JSONL -------------------------------------------------------------------------


def test_jsonl_articles_all_fields(tmp_path: Path) -> None:
    path = jsonl(
        tmp_path / "a.jsonl",
        [
            {
                "id": "a-1",
                "title": "  Title one ",
                "body": "Body",
                "sections": [" Politics ", "World", "", "Politics"],
                "tags": "x| y ||x",
                "url": " https://example.com/a1 ",
                "published_at": "2024-05-01T09:30:00Z",
                "author": "ignored",
            },
            "",
            "   ",
            {"id": "A-1", "body": "only a body", "section": "Sport|Football"},
            {"id": "a-3", "title": "t", "category": "business", "date": T0 + 60},
            {"id": "a-4", "title": "t", "categories": ["x", "y"], "published": str(T0)},
        ],
    )
    got = read_articles(path)
    assert isinstance(got, ArticleSet)
    assert (got.format, got.path, got.bad_rows) == ("jsonl", str(path), [])
    assert got.articles == [
        Article(
            "a-1",
            "Title one",
            "Body",
            ("Politics", "World"),
            ("x", "y"),
            "https://example.com/a1",
            T0,
        ),
        Article("A-1", "", "only a body", ("Sport", "Football")),  # ids are case-sensitive
        Article("a-3", "t", sections=("business",), published_at=T0 + 60),
        Article("a-4", "t", sections=("x", "y"), published_at=T0),
    ]


def test_jsonl_article_bad_rows_name_file_line_and_value(tmp_path: Path) -> None:
    path = jsonl(
        tmp_path / "bad.jsonl",
        [
            {"id": "ok", "title": "fine"},  # 1
            "{not json",  # 2
            "[1, 2]",  # 3
            {"title": "no id"},  # 4
            {"id": "has space", "title": "t"},  # 5
            {"id": "empty", "title": " ", "body": ""},  # 6
            {"id": "when", "title": "t", "published_at": "last tuesday"},  # 7
            {"id": "ok", "title": "again"},  # 8
            {"id": "x" * 200, "title": "t"},  # 9
            {"id": "ok2", "title": "t", "tags": {"a": 1}},  # 10
        ],
    )
    got = read_articles(path, max_bad_rows=9)
    assert [a.id for a in got.articles] == ["ok"]
    assert [(e.path, e.line) for e in got.bad_rows] == [(str(path), n) for n in range(2, 11)]
    text = [str(e) for e in got.bad_rows]
    assert text[0].startswith(f"{path}:2: invalid JSON")
    assert text[1] == f"{path}:3: expected a JSON object, got list [1, 2]"
    assert text[2] == f"{path}:4: id: missing"
    assert text[3].startswith(f"{path}:5: id: invalid id 'has space'")
    assert text[4] == f"{path}:6: no title and no body for id 'empty'"
    assert text[5].startswith(f"{path}:7: published_at: cannot parse time 'last tuesday'")
    assert text[6] == f"{path}:8: id: duplicate 'ok' (first on line 1)"
    assert "..." in text[7] and len(got.bad_rows[7].message) < 120  # long values truncated
    assert text[8].startswith(f"{path}:10: tags: expected a string or a list of strings")


def test_too_many_bad_rows_raise_listing_first_five_and_total(tmp_path: Path) -> None:
    rows: list[object] = [{"id": f"ok{i}", "title": "t"} for i in range(3)]
    rows += [{"id": "bad id", "title": "t"}] * 7  # lines 4..10
    path = jsonl(tmp_path / "many.jsonl", rows)
    with pytest.raises(InputError) as info:
        read_articles(path, max_bad_rows=6)
    message = str(info.value)
    assert message.startswith(f"{path}: 7 bad row(s), more than --max-bad-rows 6 allows:")
    for line in range(4, 9):
        assert f"{path}:{line}: id: invalid id 'bad id'" in message
    assert f"{path}:9:" not in message
    assert "... and 2 more" in message
    assert "--max-bad-rows 7 to skip them" in message
    got = read_articles(path, max_bad_rows=7)
    assert len(got.articles) == 3
    assert [e.line for e in got.bad_rows] == list(range(4, 11))


def test_default_allows_no_bad_rows(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "a.jsonl", [{"id": "a", "title": "t"}, "{oops"])
    with pytest.raises(InputError, match=re.escape(f"{path}:2: invalid JSON")):
        read_articles(path)


def test_empty_missing_and_all_bad_files(tmp_path: Path) -> None:
    empty = write_lines(tmp_path / "empty.jsonl", ["", "  "])
    with pytest.raises(InputError, match=r"empty\.jsonl: no articles found"):
        read_articles(empty)
    with pytest.raises(InputError, match=r"nope\.jsonl: no such file"):
        read_articles(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match=r"nope\.jsonl: no such file"):
        read_events(tmp_path / "nope.jsonl")
    bad = jsonl(tmp_path / "bad.jsonl", [{"id": "a", "title": " "}])
    with pytest.raises(InputError, match=r"no articles found \(1 bad row\(s\) skipped\)"):
        read_articles(bad, max_bad_rows=5)


def test_utf8_bom_and_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf" + b'{"id": "a", "title": "caf\xc3\xa9"}\n{"id": "b", "title": "\xff"}\n'
    )
    got = read_articles(path, max_bad_rows=1)
    assert got.articles == [Article("a", "café")]
    assert str(got.bad_rows[0]) == f"{path}:2: not valid UTF-8 text"


# --- articles: CSV ---------------------------------------------------------------------------


def test_csv_articles_multiline_fields_and_record_start_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(
        "ID,Title,body,sections,tags,published_at\n"  # 1
        'a1,"Quoted, ""title""","line one\nline two","[""World"", ""Europe""]",x|y,'
        "2024-05-01T11:30:00+02:00\n"  # 2-3
        "\n"  # 4 (blank)
        'bad id,t,"spans\ntwo lines",,,\n'  # 5-6
        "a2,t2,,News | Local,,1714555800\n"  # 7
        "a3,too,few\n"  # 8
        'a4,t4,,"[not json]",,\n',  # 9
        encoding="utf-8",
    )
    got = read_articles(path, max_bad_rows=2)
    assert got.format == "csv"
    assert got.articles == [
        Article(
            "a1",
            'Quoted, "title"',
            "line one\nline two",
            ("World", "Europe"),
            ("x", "y"),
            published_at=T0,
        ),
        Article("a2", "t2", sections=("News", "Local"), published_at=T0),
        Article("a4", "t4", sections=("[not json]",)),
    ]
    assert [str(e) for e in got.bad_rows] == [
        f"{path}:5: ID: invalid id 'bad id' (need 1-128 of A-Z a-z 0-9 . _ : ~ -)",
        f"{path}:8: expected 6 columns, got 3",
    ]


def test_csv_broken_quoting_is_a_bad_row(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "a.csv",
        ["id,title", 'a1,"ok"', 'a2,"stray"quote', "a3,fine", 'a4,"never closed', "a5,lost"],
    )
    got = read_articles(path, max_bad_rows=2)
    assert [a.id for a in got.articles] == ["a1", "a3"]
    assert [str(e) for e in got.bad_rows] == [
        f"{path}:3: broken CSV record: ',' expected after '\"'",
        f"{path}:5: broken CSV record: unexpected end of data",
    ]


def test_csv_without_id_column_is_an_input_error(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.csv", ["title,body", "t,b"])
    with pytest.raises(InputError, match=r"a\.csv:1: the article export has no column for id\n"):
        read_articles(path)


# --- articles: MIND news.tsv -----------------------------------------------------------------


def test_mind_news(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "news.tsv",
        [
            "N1\tsports\tfootball_nfl\tTitle 1\tAbstract 1\thttps://x/1\t[]\t[]",
            "N2\tnews\tnewsus\t\tOnly abstract\thttps://x/2\t[]\t[]",
            "N3\tnews\tnewsus",  # 3: too few columns
            "N4\tnews\tnewsus\t\t\thttps://x/4\t[]\t[]",  # 4: no title, no abstract
            "N1\tnews\tnewsus\tDup\t\t\t[]\t[]",  # 5: duplicate
            "N5\tlifestyle\t\tTitle 5\t",  # 5 columns are enough
        ],
    )
    got = read_articles(path, max_bad_rows=3)
    assert got.format == "mind"
    assert got.articles == [
        Article("N1", "Title 1", "Abstract 1", ("sports",), ("football_nfl",), "https://x/1"),
        Article("N2", "", "Only abstract", ("news",), ("newsus",), "https://x/2"),
        Article("N5", "Title 5", "", ("lifestyle",)),
    ]
    assert [str(e) for e in got.bad_rows] == [
        f"{path}:3: expected 8 tab-separated columns (at least 5), got 3",
        f"{path}:4: no title and no abstract for id 'N4'",
        f"{path}:5: id: duplicate 'N1' (first on line 1)",
    ]


# --- parse_time ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T09:30:00Z", T0),
        ("2024-05-01t09:30:00z", T0),
        ("2024-05-01T11:30:00+02:00", T0),
        ("2024-05-01T04:30:00-05:00", T0),
        ("2024-05-01T09:30:00.250Z", T0 + 0.25),
        ("2024-05-01 09:30:00", T0),  # naive: UTC
        ("2024-05-01", T0 - 9.5 * 3600),
        (1714555800, T0),
        (1714555800.5, T0 + 0.5),
        (np.int64(1714555800), T0),
        ("1714555800", T0),
        (" 1714555800.25 ", T0 + 0.25),
    ],
)
def test_parse_time(value: object, expected: float) -> None:
    assert parse_time(value) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "time is empty"),
        ("yesterday", "cannot parse time 'yesterday': expected RFC 3339"),
        ("2024-13-01T00:00:00Z", "cannot parse time"),
        (None, "got NoneType"),
        (True, "got bool"),
        ([1], "got list"),
        (float("nan"), "not a finite number"),
        (1714555800000, "milliseconds"),
    ],
)
def test_parse_time_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_time(value)


# --- events: JSONL / CSV ---------------------------------------------------------------------


def test_jsonl_events_sorted_stable_with_types_and_sessions(tmp_path: Path) -> None:
    path = jsonl(
        tmp_path / "clicks.jsonl",
        [
            {"article_id": "b", "ts": T0 + 10, "session_id": "s1"},
            {"article_id": "a", "ts": "2024-05-01T09:30:00Z", "type": "impression"},
            {"article_id": "c", "ts": T0 + 10, "type": "click", "session_id": 7},
            {"article_id": "a", "ts": str(T0 + 5), "type": " Click "},
        ],
    )
    log = read_events(path)
    assert isinstance(log, EventLog)
    assert (len(log), log.clicks, log.format, log.unknown_ids) == (4, 3, "jsonl", 0)
    assert log.article_ids == ["a", "a", "b", "c"]  # by ts; b before c as in the file
    assert log.ts.dtype == np.float64 and log.is_click.dtype == np.bool_
    assert log.ts.tolist() == [T0, T0 + 5, T0 + 10, T0 + 10]
    assert log.is_click.tolist() == [False, True, True, True]
    assert log.sessions == ["", "", "s1", "7"]


def test_event_bad_rows(tmp_path: Path) -> None:
    path = jsonl(
        tmp_path / "clicks.jsonl",
        [
            {"article_id": "a", "ts": T0},  # 1
            {"ts": T0},  # 2
            {"article_id": "a/b", "ts": T0},  # 3
            {"article_id": "a"},  # 4
            {"article_id": "a", "ts": "soon"},  # 5
            {"article_id": "a", "ts": T0, "type": "view"},  # 6
            "not json",  # 7
            {"article_id": "a", "ts": T0, "session_id": ["s"]},  # 8
        ],
    )
    with pytest.raises(InputError, match=re.escape(f"{path}:2: article_id: missing")):
        read_events(path)
    log = read_events(path, max_bad_rows=7)
    assert len(log) == 1
    assert [str(e) for e in log.bad_rows] == [
        f"{path}:2: article_id: missing",
        f"{path}:3: article_id: invalid id 'a/b' (need 1-128 of A-Z a-z 0-9 . _ : ~ -)",
        f"{path}:4: ts: missing",
        f"{path}:5: ts: cannot parse time 'soon': expected RFC 3339"
        " (e.g. 2024-05-01T09:30:00Z) or epoch seconds",
        f"{path}:6: type: expected 'click' or 'impression', got 'view'",
        f"{path}:7: invalid JSON: Expecting value (column 1)",
        f"{path}:8: session_id: expected a string, got ['s']",
    ]
    assert log.bad_rows[0] == RowError(str(path), 2, "article_id: missing")


def test_unknown_ids_are_dropped_and_counted(tmp_path: Path) -> None:
    rows: list[object] = [{"article_id": f"u{i % 7}", "ts": T0 + i} for i in range(14)]
    rows += [{"article_id": "k", "ts": T0 - 1, "type": "impression"}]
    path = jsonl(tmp_path / "clicks.jsonl", rows)
    log = read_events(path, known_ids=["k", "u0"])  # any collection works
    assert log.unknown_ids == 12
    assert log.unknown_id_examples == ["u1", "u2", "u3", "u4", "u5"]
    assert log.article_ids == ["k", "u0", "u0"]
    assert (len(log), log.clicks, log.bad_rows) == (3, 2, [])


def test_csv_events(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "clicks.csv",
        [
            "article_id,ts,type,session_id",
            "a,2024-05-01T09:31:00Z,,s1",
            "b,1714555800,impression,",
            "c,2024-05-01T09:32:00Z,purchase,s2",
        ],
    )
    log = read_events(path, max_bad_rows=1)
    assert log.format == "csv"
    assert log.article_ids == ["b", "a"]
    assert log.is_click.tolist() == [False, True]
    assert log.sessions == ["", "s1"]
    assert [str(e) for e in log.bad_rows] == [
        f"{path}:4: type: expected 'click' or 'impression', got 'purchase'"
    ]
    no_ts = write_lines(tmp_path / "no_ts.csv", ["article_id,when", "a,1"])
    with pytest.raises(InputError, match=r"no_ts\.csv:1: the click log has no column for ts\n"):
        read_events(no_ts)


def test_empty_event_log_is_allowed(tmp_path: Path) -> None:
    log = read_events(write_lines(tmp_path / "clicks.jsonl", [""]))
    assert (len(log), log.clicks, log.ts.shape, log.is_click.shape) == (0, 0, (0,), (0,))


# --- events: MIND behaviors.tsv --------------------------------------------------------------


def test_mind_behaviors(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "behaviors.tsv",
        [
            "1\tU1\t11/12/2019 2:14:46 PM\tN9 N8\tN1-1 N2-0 N3-0",
            "2\tU2\t11/12/2019 12:05:00 AM\t\tN2-1 N1-1",
            "3\tU3\t11/12/2019 9:00:00 AM\tN1\tN1-2",  # 3: bad token
            "4\tU4\t13/40/2019 9:00:00 AM\t\tN1-1",  # 4: bad time
            "5\tU5\t11/12/2019 9:00:00 AM",  # 5: too few columns
            "6\tU6\t11/12/2019 12:00:00 PM\t\tN4-0",
        ],
    )
    log = read_events(path, max_bad_rows=3)
    assert log.format == "mind"
    midnight = datetime(2019, 11, 12, tzinfo=UTC).timestamp()
    # Each -1 is an impression and a click; each -0 an impression; history is ignored.
    assert (len(log), log.clicks) == (9, 3)
    afternoon = midnight + 14 * 3600 + 14 * 60 + 46
    assert log.ts.tolist() == [midnight + 300] * 4 + [midnight + 12 * 3600] + [afternoon] * 4
    assert list(zip(log.article_ids, log.is_click.tolist(), log.sessions, strict=True)) == [
        ("N2", False, "U2"),
        ("N2", True, "U2"),
        ("N1", False, "U2"),
        ("N1", True, "U2"),
        ("N4", False, "U6"),
        ("N1", False, "U1"),
        ("N1", True, "U1"),
        ("N2", False, "U1"),
        ("N3", False, "U1"),
    ]
    assert [str(e) for e in log.bad_rows] == [
        f"{path}:3: impressions: bad entry 'N1-2' (expected <news_id>-1 or -0)",
        f"{path}:4: time: cannot parse '13/40/2019 9:00:00 AM'"
        " (expected MM/DD/YYYY HH:MM:SS AM/PM)",
        f"{path}:5: expected 5 tab-separated columns (impression_id, user_id, time, history,"
        " impressions), got 3",
    ]
    known = read_events(path, known_ids={"N1"}, max_bad_rows=3)
    assert (len(known), known.clicks, known.unknown_ids) == (4, 2, 5)
    assert known.unknown_id_examples == ["N2", "N3", "N4"]


# --- the real MIND sample --------------------------------------------------------------------


def test_real_mind_news() -> None:
    got = read_articles(mind_file("news.tsv"))
    assert (len(got.articles), got.bad_rows, got.format) == (2000, [], "mind")
    assert all(a.sections and a.title for a in got.articles)
    assert got.articles[0].id == "N34700"


def test_real_mind_behaviors() -> None:
    news = read_articles(mind_file("news.tsv"))
    log = read_events(mind_file("behaviors.tsv"), known_ids={a.id for a in news.articles})
    assert log.bad_rows == []
    assert (len(log), log.clicks, log.unknown_ids) == (5485, 175, 191416)
    assert len(log.unknown_id_examples) == 5
    low = datetime(2019, 11, 9, tzinfo=UTC).timestamp()
    high = datetime(2019, 11, 15, tzinfo=UTC).timestamp()
    assert low <= log.ts[0] and log.ts[-1] < high
    assert bool(np.all(np.diff(log.ts) >= 0))
    everything = read_events(mind_file("behaviors.tsv"))
    assert (len(everything), everything.clicks, everything.unknown_ids) == (196901, 7542, 0)
    assert len(set(everything.sessions)) == 4637


def test_large_jsonl_click_log_reads_every_event(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    with path.open("w") as f:
        for i in range(100_000):
            kind = "click" if i % 3 else "impression"
            f.write(f'{{"article_id": "a{i % 997}", "ts": {T0 + i}, "type": "{kind}"}}\n')
    log = read_events(path, known_ids=[f"a{i}" for i in range(997)])
    assert (len(log), log.clicks) == (100_000, 66_666)
