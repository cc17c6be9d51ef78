"""The training pass's term counter gives scikit-learn's vocabulary, idf and TF-IDF rows and the
near-duplicate hashed counts bit for bit, on generated, real and awkward text."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.textmodel import document_text
from tests.helpers import shared_file
from training.demo.generate import DemoSpec, generate
from training.related import termcount
from training.related.duplicates import duplicate_counts
from training.related.params import RelatedParams, make_vectorizer
from training.sources.articles import read_articles

AWKWARD = [
    "",
    "the and of",  # stop words only
    "Ünïcode café naïve Straße ΣΊΣΥΦΟΣ ὅς İstanbul KELVIN \u212a \u00b2x x\u00b2 a\u00b2b",
    "mixed snake_case and digits 2024 h2o a1 b_ __init__ x y z 1 22 333",
    "punctuation!!! don't stop-words... e-mail e.g. U.S. (parens) [brackets] {braces}",
    "\u5317\u4eac\u5e02 \u6771\u4eac \u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd "
    "\u0915\u093f\u0924\u093e\u092c \uff21\uff22\uff23 \u2160\u2161 \u00bd \u0663\u0664",
    "tab\tseparated\nnew\nlines\r\nand\x0bvertical\x0cfeed\x1cfile\x1dgroup\u2028line\u00a0nbsp",
    "repeat repeat repeat repeat story story story",
    "the story of the market the market of the story",
]


def sklearn_reference(texts: list[str], params: RelatedParams) -> tuple[object, sp.csr_matrix]:
    vectorizer = make_vectorizer(params, len(texts))
    rows = sp.csr_matrix(vectorizer.fit_transform(texts))
    rows.sort_indices()  # fit_transform leaves columns in first-seen order within a row
    return vectorizer, rows


def assert_identical(got: sp.csr_matrix, want: sp.csr_matrix) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got.indptr, want.indptr)
    assert np.array_equal(got.indices, want.indices)
    assert np.array_equal(got.data, want.data)  # bit for bit, not approximately


def check(texts: list[str], params: RelatedParams) -> None:
    reference, want = sklearn_reference(texts, params)
    vectorizer = make_vectorizer(params, len(texts))
    counter = termcount.fit(vectorizer, iter(texts))
    assert vectorizer.vocabulary_ == reference.vocabulary_  # type: ignore[attr-defined]
    assert np.array_equal(vectorizer.idf_, reference.idf_)  # type: ignore[attr-defined]
    assert vectorizer.idf_.dtype == reference.idf_.dtype  # type: ignore[attr-defined]
    counts = counter.count(texts)
    assert_identical(counts.tfidf, want)
    assert counts.duplicates is not None
    assert_identical(counts.duplicates, duplicate_counts(texts))
    # the fitted vectorizer is a working scikit-learn one (what is saved and served)
    assert_identical(sp.csr_matrix(vectorizer.transform(texts)), want)


PARAMS = [
    RelatedParams(),
    RelatedParams(letters_only=False, stop_words=None, ngram_max=3, min_df=1, max_df=1.0),
    RelatedParams(ngram_max=1, min_df=1),
    RelatedParams(letters_only=False, max_df=0.3),
]


@pytest.fixture(scope="module")
def demo_texts(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("demo")
    generate(folder, DemoSpec(articles=600, clicks_per_article=0))
    articles = read_articles(folder / "articles.jsonl", "auto", 0).articles
    return [document_text(a, 1) for a in articles]


@pytest.mark.parametrize("params", PARAMS, ids=["shipped", "words-trigrams", "unigrams", "words"])
def test_equals_scikit_learn_on_the_demo_corpus(
    demo_texts: list[str], params: RelatedParams
) -> None:
    check(demo_texts + AWKWARD, params)


def test_equals_scikit_learn_on_awkward_text_alone() -> None:
    check(AWKWARD * 2, RelatedParams(min_df=1, max_df=1.0))


@pytest.mark.parametrize(("parts", "fmt"), [(("bbc", "articles.jsonl"), "jsonl"),
                                            (("mind-sample", "news.tsv"), "mind")])  # fmt: skip
@pytest.mark.slow
def test_equals_scikit_learn_on_real_news(parts: tuple[str, str], fmt: str) -> None:
    articles = read_articles(shared_file(*parts), fmt, 0).articles
    for params in PARAMS[:2]:
        check([document_text(a, 2) for a in articles], replace(params, title_weight=2))


def test_saved_counter_counts_the_same(demo_texts: list[str], tmp_path: Path) -> None:
    counter = termcount.fit(make_vectorizer(RelatedParams(), len(demo_texts)), demo_texts)
    counter.save(tmp_path / "counter.npz")
    loaded = termcount.TermCounter.load(tmp_path / "counter.npz")
    first, second = counter.count(demo_texts[:50]), loaded.count(demo_texts[:50])
    assert_identical(second.tfidf, first.tfidf)
    assert first.duplicates is not None and second.duplicates is not None
    assert_identical(second.duplicates, first.duplicates)


def test_separate_duplicate_texts_and_no_duplicates(demo_texts: list[str]) -> None:
    counter = termcount.fit(make_vectorizer(RelatedParams(), len(demo_texts)), demo_texts)
    others = demo_texts[10:20]
    counts = counter.count(demo_texts[:10], others)
    assert counts.duplicates is not None
    assert_identical(counts.duplicates, duplicate_counts(others))
    assert counter.count(demo_texts[:10], duplicates=False).duplicates is None


def test_clear_errors() -> None:
    with pytest.raises(ValueError, match="empty vocabulary"):
        termcount.fit(make_vectorizer(RelatedParams(), 30), ["the of and"] * 30)
    with pytest.raises(ValueError, match="no terms remain"):
        unique_words = [f"word{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(30)]
        termcount.fit(make_vectorizer(RelatedParams(min_df=2), 30), unique_words)
    uncovered = make_vectorizer(RelatedParams(), 30)
    uncovered.set_params(strip_accents="unicode")
    with pytest.raises(ValueError, match="does not cover"):
        termcount.fit(uncovered, ["some text"])
    with pytest.raises(ValueError, match="ngram_max"):
        RelatedParams(ngram_max=termcount.MAX_NGRAM + 1)


@pytest.mark.slow
def test_a_worker_that_cannot_start_fails_the_run_instead_of_hanging(tmp_path: Path) -> None:
    """Spawned workers import the main module; a script without a main guard makes each worker
    try to train too, which multiprocessing refuses: the run must stop with a clear error."""
    script = tmp_path / "unguarded.py"
    script.write_text(
        textwrap.dedent("""
        from recommender.domain import Article
        from training.related.params import RelatedParams, make_vectorizer
        from training.related.vectorise import vectorise
        names = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"]
        articles = [Article(f"a{i}", f"{names[i % 7]} story", f"{names[i % 5]} report")
                    for i in range(400)]
        vectorise(articles, make_vectorizer(RelatedParams(), 400), 1, n_jobs=2, chunk_rows=50)
    """)
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(script)], cwd=root, capture_output=True,
                          text=True, timeout=240, env={"PYTHONPATH": str(root)})  # fmt: skip
    assert done.returncode != 0
    assert "if __name__ == '__main__':" in done.stderr
