"""The text model shared by training and live upserts: an article's document text, its analysis
into terms, and the fitted TF-IDF model (vocabulary + idf, saved as JSON) that weighs them.

Training fits the model with scikit-learn (training/related/); serving rebuilds an article's
row from the JSON alone, with the same analysis, so a serving replica never loads
scikit-learn. The analysis is scikit-learn's for the settings training uses (word analyzer,
lowercase, no accent stripping, a token regex, a stop-word list, word n-grams); the weighting
is its TfidfTransformer's (optional sublinear tf, times idf, optional L2 norm).
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from recommender.domain import Article

FORMAT = "newsrec-tfidf-1"
WORDS = r"(?u)\b\w\w+\b"
"""scikit-learn's default token pattern: what the near-duplicate hasher reads."""
LETTERS_ONLY = r"(?u)\b[^\W\d_][^\W\d_]+\b"
"""Tokens of letters only: on ASCII text, exactly the WORDS tokens that are all letters (both
are whole runs of word characters); other text is tokenised with this pattern itself."""
_WORDS = re.compile(WORDS)
_ASCII_BREAKS = str.maketrans(
    {c: " " for c in map(chr, range(128)) if not (c.isalnum() or c == "_")}
)
"""Every ASCII character that is not a word character (\\w), as a space."""


def document_text(article: Article, title_weight: int) -> str:
    """Title repeated title_weight times (titles say what a story is about), body, then tags."""
    parts = [article.title] * title_weight + [article.body, " ".join(article.tags)]
    return "\n".join(p for p in parts if p)


def words(lower: str) -> list[str]:
    """The WORDS tokens of lowercased text: what the near-duplicate hasher reads."""
    if lower.isascii():
        # Runs of [a-z0-9_] by translate + split: 3x faster than the regex, same tokens.
        return [w for w in lower.translate(_ASCII_BREAKS).split() if len(w) > 1]
    return _WORDS.findall(lower)


@dataclass(frozen=True)
class Analyzer:
    """Tokens, stop words dropped, and word n-grams, as scikit-learn's word analyzer makes them."""

    pattern: re.Pattern[str]
    stop_words: frozenset[str]
    ngram_range: tuple[int, int]

    def tokens(self, text: str) -> tuple[Iterable[str], list[str]]:
        """The tokens n-grams are made of (stop words dropped), and the hasher's tokens."""
        lower = text.lower()
        found = words(lower)
        if self.pattern.pattern == WORDS:
            own: Iterable[str] = found
        elif lower.isascii():  # ASCII letters are exactly str.isalpha
            own = filter(str.isalpha, found)
        else:
            own = self.pattern.findall(lower)
        if self.stop_words:
            own = itertools.filterfalse(self.stop_words.__contains__, own)
        return own, found

    def terms(self, text: str) -> list[str]:
        """Every n-gram of the text, as scikit-learn names them (tokens joined by spaces)."""
        tokens = list(self.tokens(text)[0])
        low, high = self.ngram_range
        grams = list(tokens) if low == 1 else []
        for n in range(max(low, 2), high + 1):
            grams += [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        return grams


@dataclass(frozen=True)
class TextModel:
    """A fitted TF-IDF model: analysis, vocabulary (term -> column), idf and weighting."""

    analyzer: Analyzer
    vocabulary: dict[str, int]
    idf: NDArray[np.float64]
    sublinear_tf: bool
    norm: str | None
    title_weight: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TextModel:
        """From the JSON training writes (training/related/textfit.py); ValueError if it is not
        one or uses settings this analysis does not reproduce."""
        if data.get("format") != FORMAT:
            raise ValueError(f"not a newsrec TF-IDF model (format {data.get('format')!r})")
        p = data["params"]
        covered = (
            p["analyzer"] == "word" and p["lowercase"] and p["strip_accents"] is None
            and not p["binary"] and p["use_idf"] and p["norm"] in ("l2", None)
        )  # fmt: skip
        if not covered:
            raise ValueError(f"TF-IDF settings not reproducible at serve time: {p}")
        analyzer = Analyzer(
            re.compile(p["token_pattern"]),
            frozenset(p["stop_words"] or ()),
            (int(p["ngram_range"][0]), int(p["ngram_range"][1])),
        )
        idf = np.asarray(data["idf"], dtype=np.float64)
        return cls(analyzer, dict(data["vocabulary"]), idf, bool(p["sublinear_tf"]), p["norm"],
                   int(data["title_weight"]))  # fmt: skip

    @classmethod
    def loads(cls, raw: bytes | str) -> TextModel:
        """From the JSON text (a model folder's vectorizer.json, or its Redis value)."""
        return cls.from_json(json.loads(raw))

    @property
    def width(self) -> int:
        """Columns of a row: the vocabulary's size."""
        return len(self.idf)

    def row(self, article: Article) -> sp.csr_matrix:
        """The article's 1 x width float32 TF-IDF row, as training computed it."""
        counts = Counter(self.analyzer.terms(document_text(article, self.title_weight)))
        found = sorted(
            (col, n) for term, n in counts.items() if (col := self.vocabulary.get(term)) is not None
        )
        cols = np.fromiter((c for c, _ in found), dtype=np.int32, count=len(found))
        values = np.fromiter((n for _, n in found), dtype=np.float32, count=len(found))
        if self.sublinear_tf:
            np.log(values, out=values)
            values += np.float32(1.0)
        values *= self.idf[cols]
        if self.norm == "l2" and len(values):
            values /= np.sqrt(np.dot(values.astype(np.float64), values.astype(np.float64)))
        return sp.csr_matrix(
            (values, cols, np.array([0, len(cols)], dtype=np.int32)), shape=(1, self.width)
        )
