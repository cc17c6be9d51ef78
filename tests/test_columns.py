"""Exports with the column names CMSs use: recognised, mapped, or one clear header error."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from recommender.domain import Article
from training.sources.articles import read_articles
from training.sources.columns import merged_map, normalise, parse_map
from training.sources.common import InputError
from training.sources.events import read_events


def write_csv(path: Path, header: list[str], rows: Sequence[Sequence[object]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_common_cms_names_are_recognised(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "export.csv",
        ["article_id", "Headline", "text", "Category", "Published", "Link", "Keywords"],
        [["a1", "Rates rise", "The bank raised rates.", "business", "2024-05-01T09:30:00Z",
          "https://x.example/a1", "rates|banks"]],
    )  # fmt: skip
    got = read_articles(path)
    assert got.articles == [
        Article("a1", "Rates rise", "The bank raised rates.", ("business",), ("rates", "banks"),
                "https://x.example/a1", 1714555800.0)
    ]  # fmt: skip
    assert got.columns == {"id": "article_id", "title": "Headline", "body": "text",
                           "section": "Category", "tags": "Keywords", "url": "Link",
                           "published_at": "Published"}  # fmt: skip


def test_jsonl_keys_in_camel_case_and_a_summary_when_the_body_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    rows = [
        {"articleId": "a1", "headline": "One", "content": "Full text", "summary": "Short",
         "publishedAt": 1714555800},
        {"articleId": "a2", "headline": "Two", "content": "", "summary": "Only a summary"},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = read_articles(path)
    assert [(a.id, a.title, a.body, a.published_at) for a in got.articles] == [
        ("a1", "One", "Full text", 1714555800.0),
        ("a2", "Two", "Only a summary", None),
    ]


def test_missing_title_and_body_is_one_header_error_with_a_mapping(tmp_path: Path) -> None:
    rows = [[f"a{i}", f"Heading {i}", f"Text {i}"] for i in range(300)]
    path = write_csv(tmp_path / "export.csv", ["id", "Heading Line", "Story Text"], rows)
    with pytest.raises(InputError) as caught:
        read_articles(path, max_bad_rows=300)
    message = str(caught.value)
    assert message.startswith(f"{path}:1: the article export has no column for title or body\n")
    assert "  found: id, Heading Line, Story Text\n" in message
    assert "title is looked for as: title, headline," in message
    assert "--map 'title=Heading Line'" in message  # quoted: it can be pasted into a shell
    assert "bad row" not in message  # a header problem, not 300 row problems
    mapped = read_articles(path, mapping={"title": "Heading Line", "body": "story_text"})
    assert len(mapped.articles) == 300
    assert mapped.articles[7] == Article("a7", "Heading 7", "Text 7")
    assert mapped.columns == {"id": "id", "title": "Heading Line", "body": "Story Text"}


def test_a_mapping_to_a_column_that_is_not_there_names_it(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "export.csv", ["id", "title"], [["a", "t"]])
    with pytest.raises(InputError, match=r"--map body=copy: the file has no column 'copy' "
                       r"\(found: id, title\)"):  # fmt: skip
        read_articles(path, mapping={"body": "copy"})


def test_a_mapping_overrides_a_recognised_name(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "export.csv", ["id", "title", "seo_title"], [["a", "Short", "Long SEO title"]]
    )
    assert read_articles(path, mapping={"title": "seo_title"}).articles[0].title == "Long SEO title"


def test_jsonl_without_an_id_key_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    path.write_text("".join(json.dumps({"key": f"k{i}", "title": "t"}) + "\n" for i in range(5)))
    with pytest.raises(InputError, match=r"first 5 rows\): the article export has no column for "
                       r"id\n  found: key, title\n"):  # fmt: skip
        read_articles(path)
    assert len(read_articles(path, mapping={"id": "key"}).articles) == 5


def test_click_logs_aliased_mapped_and_missing(tmp_path: Path) -> None:
    aliased = write_csv(
        tmp_path / "clicks.csv",
        ["Item ID", "Timestamp", "Event Type", "User"],
        [["a", "1714555800", "click", "u1"], ["b", "1714555700", "impression", "u2"]],
    )
    log = read_events(aliased)
    assert log.article_ids == ["b", "a"] and log.is_click.tolist() == [False, True]
    assert log.sessions == ["u2", "u1"]
    assert log.columns == {"article_id": "Item ID", "ts": "Timestamp", "type": "Event Type",
                           "session_id": "User"}  # fmt: skip
    odd = write_csv(tmp_path / "odd.csv", ["story", "when_seen"], [["a", "1714555800"]])
    with pytest.raises(InputError) as caught:
        read_events(odd)
    message = str(caught.value)
    assert message.startswith(f"{odd}:1: the click log has no column for article_id and ts\n")
    assert "found: story, when_seen" in message and "--map article_id=" in message
    mapped = read_events(odd, mapping={"article_id": "story", "ts": "when_seen"})
    assert mapped.article_ids == ["a"] and mapped.ts.tolist() == [1714555800.0]


def test_a_mapping_on_a_mind_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "news.tsv"
    path.write_text("N1\tnews\tworld\tTitle\tAbstract\t\t\t\n")
    assert read_articles(path).articles[0].id == "N1"
    with pytest.raises(InputError, match=r"a column mapping \(title: --map or column_map\) "
                       r"applies to CSV and JSONL files"):  # fmt: skip
        read_articles(path, mapping={"title": "x"})


def test_names_normalise_and_maps_parse() -> None:
    assert normalise(" Article ID ") == normalise("articleId") == "article_id"
    assert normalise("pub-date") == "pub_date" and normalise("URL") == "url"
    assert parse_map("title=Heading Line, body = text,") == {
        "title": "Heading Line",
        "body": "text",
    }
    assert merged_map("title=a,ts=b", ["title=c"]) == {"title": "c", "ts": "b"}
    with pytest.raises(InputError, match=r"--map: unknown field 'headline'; articles have id,"):
        parse_map("headline=title")
    with pytest.raises(InputError, match=r"column_map setting: 'title' is not FIELD=COLUMN"):
        merged_map("title", [])


def test_a_field_reads_one_column_and_old_exports_read_as_before(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    rows = [
        {"id": "a", "guid": "g-a", "title": "One", "summary": "S", "section": [],
         "categories": ["news"], "date": "2024-05-01T09:30:00Z", "published": True},
        {"id": "", "guid": "g-b", "title": "Two"},  # a blank id is bad, not the guid
        {"id": "c", "title": "Three", "category": "world", "published_at": 1714555800},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = read_articles(path, max_bad_rows=1)
    assert [str(e).split(": ", 1)[1] for e in got.bad_rows] == ["id: missing"]
    first, third = got.articles
    assert first.sections == ("news",) and first.published_at == 1714555800.0
    assert first.body == "S"  # a body from the summary when there is no body
    assert third.sections == ("world",) and third.published_at == 1714555800.0
    clicks = write_csv(
        tmp_path / "clicks.csv",
        ["article_id", "ts", "session_id", "user_id", "event"],
        [["a", "1714555800", "", "u1", "pageview"]],
    )
    log = read_events(clicks)  # `event` is not `type`; a blank session stays blank
    assert log.is_click.tolist() == [True] and log.sessions == [""]


def test_a_mapped_column_feeds_its_field_alone(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "export.csv", ["id", "headline", "text"], [["a", "H", "Body"]])
    got = read_articles(path, mapping={"title": "text"})
    assert (got.articles[0].title, got.articles[0].body) == ("Body", "")
    assert got.unused_columns == ["headline"]


def test_the_first_bad_rows_are_listed_although_jsonl_reads_ahead(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    lines = ['{"id": "bad id", "title": "t"}', *['{"id": ' for _ in range(8)]]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as caught:
        read_articles(path)
    listed = [line.strip() for line in str(caught.value).splitlines()[1:6]]
    assert [line.split(": ")[0] for line in listed] == [f"{path}:{n}" for n in range(1, 6)]
