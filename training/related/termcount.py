"""Term counting for the training pass: scikit-learn's TF-IDF fit and rows, and the hashed counts
near-duplicate search reads, from one tokenising pass per text, with n-grams as integer codes.

Why: scikit-learn's `TfidfVectorizer` counts terms in a Python loop per term and looks up every
n-gram as a new string, and the hashed counts tokenised every text a second time: 1.4 ms per
article together on this machine, most of a million-article training. Here each token is looked
up once; an n-gram is the integer sum(id_i * T^(n-1-i)) of its tokens' ids (T = distinct
tokens), matched against the vocabulary's codes with numpy. The output is scikit-learn's, bit
for bit (tests/test_termcount.py holds it on the demo corpus, BBC, MIND and awkward Unicode),
and the fitted vectorizer is still a scikit-learn `TfidfVectorizer`: what is saved, served and
used for live upserts does not change.

Covered: what `training.related.params.make_vectorizer` builds (word analyzer, lowercase, no accent
stripping, the letters-only or scikit-learn's default token pattern, English or no stop words,
n-grams up to 3, int min_df, float or int max_df, idf on). Anything else raises ValueError.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.feature_extraction import FeatureHasher
from sklearn.feature_extraction.text import TfidfTransformer, TfidfVectorizer

from recommender.textmodel import LETTERS_ONLY, WORDS, Analyzer, words
from training.related.duplicates import DUPLICATE_BUCKETS

MAX_NGRAM = 3
"""Longest n-gram covered: a code of n token ids must fit in 63 bits."""
_CODE_BITS = 63


def analyzer_of(vectorizer: TfidfVectorizer) -> Analyzer:
    """The analysis of an sklearn vectorizer; ValueError for settings it does not cover."""
    v = vectorizer
    covered = (
        v.analyzer == "word" and v.lowercase and v.strip_accents is None
        and v.preprocessor is None and v.tokenizer is None and not v.binary
        and v.token_pattern in (WORDS, LETTERS_ONLY) and v.input == "content"
        and v.use_idf and 1 <= v.ngram_range[0] <= v.ngram_range[1] <= MAX_NGRAM
    )  # fmt: skip
    if not covered:
        raise ValueError(f"training.related.termcount does not cover this vectorizer: {v!r}")
    return Analyzer(re.compile(v.token_pattern), frozenset(v.get_stop_words() or ()),
                    tuple(v.ngram_range))  # fmt: skip


@dataclass
class _Tokens:
    """Token ids of many texts back to back: ids[starts[d]:starts[d + 1]] are text d's."""

    ids: NDArray[np.int64]
    lens: NDArray[np.int64]

    def grams(self, n: int, radix: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Each n-gram inside one text with every token known (id >= 0): its text, its code."""
        text = np.repeat(np.arange(len(self.lens)), self.lens)
        m = len(self.ids) - n + 1
        if m <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        code = self.ids[:m].copy()
        ok = (code >= 0) & (text[:m] == text[n - 1 :])
        for i in range(1, n):
            part = self.ids[i : i + m]
            ok &= part >= 0
            code = code * radix + part
        return text[:m][ok], code[ok]


def _radix(tokens: int, n: int) -> int:
    """Smallest code base for these tokens; ValueError when n-grams of them overflow 63 bits."""
    radix = max(tokens, 1)
    if n * (radix - 1).bit_length() > _CODE_BITS:
        raise ValueError(f"{tokens:,} distinct tokens are too many for {n}-gram codes")
    return radix


def fit(vectorizer: TfidfVectorizer, texts: Iterable[str]) -> TermCounter:
    """Fit the vocabulary and idf exactly as `vectorizer.fit(texts)` would (the vectorizer is
    fitted in place) and return the counter that transforms with them.

    Tokens get ids as first seen; each n-gram's document frequency counts its distinct
    (text, code) pairs; min_df/max_df prune; survivors are named and numbered in sorted order
    (scikit-learn's order). Only the surviving n-grams ever become strings."""
    analyzer = analyzer_of(vectorizer)
    if vectorizer.vocabulary is not None or vectorizer.max_features is not None:
        raise ValueError("termcount.fit learns the whole vocabulary: no vocabulary or "
                         "max_features settings")  # fmt: skip
    seen: defaultdict[str, int] = defaultdict()
    seen.default_factory = seen.__len__  # a token seen first gets the next id
    parts = [np.fromiter(map(seen.__getitem__, analyzer.tokens(t)[0]), np.int64) for t in texts]
    tokens = _Tokens(np.concatenate([np.zeros(0, np.int64), *parts]),
                     np.fromiter(map(len, parts), np.int64, len(parts)))  # fmt: skip
    n_docs, names = len(parts), list(seen)  # names in id order: a dict keeps insertion order
    del parts, seen
    if not names:
        raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
    high, low = _doc_count(vectorizer.max_df, n_docs), _doc_count(vectorizer.min_df, n_docs)
    if high < low:
        raise ValueError("max_df corresponds to < documents than min_df")
    radix = _radix(len(names), analyzer.ngram_range[1])
    terms: list[str] = []
    kept_codes: dict[int, NDArray[np.int64]] = {}
    frequencies: list[NDArray[np.int64]] = []
    for n in range(analyzer.ngram_range[0], analyzer.ngram_range[1] + 1):
        codes, df = _document_frequencies(*tokens.grams(n, radix), n_docs, radix**n)
        kept = (df <= high) & (df >= low)
        kept_codes[n] = codes[kept]
        terms += _names(codes[kept], n, radix, names)
        frequencies.append(df[kept])
    if not terms:
        raise ValueError("After pruning, no terms remain. Try a lower min_df or a higher max_df.")
    alphabetical = np.asarray(sorted(range(len(terms)), key=terms.__getitem__), dtype=np.int64)
    vectorizer.vocabulary_ = dict(zip(map(terms.__getitem__, alphabetical.tolist()),
                                      range(len(terms)), strict=True))  # fmt: skip
    idf = smooth_idf(np.concatenate(frequencies)[alphabetical], n_docs, vectorizer.smooth_idf,
                     vectorizer.dtype)  # fmt: skip
    vectorizer.idf_ = idf
    column = np.empty(len(terms), dtype=np.int64)
    column[alphabetical] = np.arange(len(terms))  # term (in code order) -> its column
    bounds = np.cumsum([0] + [len(c) for c in kept_codes.values()])
    codes_and_columns = {n: (c, column[a:b]) for (n, c), a, b in
                         zip(kept_codes.items(), bounds[:-1], bounds[1:], strict=True)}  # fmt: skip
    return TermCounter(analyzer, names, codes_and_columns, np.asarray(vectorizer.idf_),
                       vectorizer.norm, vectorizer.sublinear_tf)  # fmt: skip


def _document_frequencies(
    text: NDArray[np.int64], code: NDArray[np.int64], n_docs: int, codes: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Distinct codes (sorted) and in how many texts each occurs."""
    bits = max(n_docs - 1, 1).bit_length()
    if (max(codes - 1, 1).bit_length() + bits) <= _CODE_BITS:
        # Code and text packed in one int64: one (fast, SIMD) sort finds the distinct pairs.
        pairs = np.sort((code << bits) | text)
        first = np.ones(len(pairs), dtype=bool)
        first[1:] = pairs[1:] != pairs[:-1]
        distinct = pairs[first] >> bits
    else:  # long n-grams over many tokens: the same, by a slower two-key sort
        order = np.lexsort((text, code))
        code, text = code[order], text[order]
        first = np.ones(len(code), dtype=bool)
        first[1:] = (code[1:] != code[:-1]) | (text[1:] != text[:-1])
        distinct = code[first]
    boundary = np.ones(len(distinct), dtype=bool)
    boundary[1:] = distinct[1:] != distinct[:-1]
    starts = np.flatnonzero(boundary)
    return distinct[starts], np.diff(np.append(starts, len(distinct)))


def _utf8(text: str) -> NDArray[np.uint8]:
    return np.frombuffer(text.encode(), dtype=np.uint8)


def _from_utf8(array: NDArray[np.uint8]) -> str:
    return array.tobytes().decode()


def _doc_count(limit: float, n_docs: int) -> float:
    """min_df/max_df as documents: an int is a count, a float a share (scikit-learn's rule)."""
    return float(limit) if isinstance(limit, Integral) else limit * n_docs


def _names(codes: NDArray[np.int64], n: int, radix: int, names: list[str]) -> list[str]:
    """The n-grams of these codes as scikit-learn names them: tokens joined by spaces."""
    columns = []
    for _ in range(n):
        codes, token = np.divmod(codes, radix)
        columns.append(map(names.__getitem__, token.tolist()))
    return list(map(" ".join, zip(*reversed(columns), strict=True)))


def smooth_idf(
    df: NDArray[np.int64], n_docs: int, smooth: bool, dtype: type
) -> NDArray[np.floating]:
    """scikit-learn's idf (TfidfTransformer.fit): log((n + s) / (df + s)) + 1, in its dtype."""
    kind = np.dtype(dtype) if dtype in (np.float32, np.float64) else np.dtype(np.float64)
    frequency: NDArray[np.floating] = df.astype(kind)
    frequency += float(smooth)
    idf = np.full_like(frequency, fill_value=n_docs + int(smooth))
    idf /= frequency
    np.log(idf, out=idf)
    idf += 1.0
    return idf


@dataclass
class Counts:
    """One pass over texts: TF-IDF rows and hashed near-duplicate counts."""

    tfidf: sp.csr_matrix
    """Rows as the fitted `vectorizer.transform` gives them (float32, sorted indices)."""
    duplicates: sp.csr_matrix | None
    """As training.related.duplicates.duplicate_counts gives them, or None."""


@dataclass
class TermCounter:
    """A fitted vectorizer's transform, and the hashed counts, from one tokenising pass.

    Holds only what counting needs (token ids, each n-gram length's sorted codes and their
    columns, the idf), so it saves to a small .npz that worker processes load."""

    analyzer: Analyzer
    tokens: list[str]
    """Token names; a token's id is its position."""
    codes: dict[int, tuple[NDArray[np.int64], NDArray[np.int64]]]
    """Per n-gram length: the vocabulary's codes, sorted, and each one's column."""
    idf: NDArray[np.floating]
    norm: str | None
    sublinear_tf: bool

    def __post_init__(self) -> None:
        self.token_ids = dict(zip(self.tokens, range(len(self.tokens)), strict=True))
        self.radix = _radix(len(self.tokens), self.analyzer.ngram_range[1])
        self.weighting = TfidfTransformer(norm=self.norm, sublinear_tf=self.sublinear_tf)
        self.weighting.idf_ = self.idf
        self.hasher = FeatureHasher(DUPLICATE_BUCKETS, input_type="dict", alternate_sign=False,
                                    dtype=np.float32)  # fmt: skip

    def save(self, path: Path) -> None:
        """Write the counter as plain arrays (np.savez; no pickles)."""
        low, high = self.analyzer.ngram_range
        arrays: dict[str, NDArray[Any]] = {
            "tokens": _utf8("\n".join(self.tokens)),  # tokens are runs of word characters
            "pattern": _utf8(self.analyzer.pattern.pattern),
            "stop_words": _utf8("\n".join(sorted(self.analyzer.stop_words))),
            "ngram_range": np.asarray([low, high]),
            "idf": self.idf,
            "norm": _utf8(self.norm or ""),
            "sublinear_tf": np.asarray(self.sublinear_tf),
        }
        for n, (codes, columns) in self.codes.items():
            arrays[f"codes_{n}"], arrays[f"columns_{n}"] = codes, columns
        np.savez(path, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path) -> TermCounter:
        """Read a counter written by save."""
        with np.load(path, allow_pickle=False) as saved:
            low, high = (int(x) for x in saved["ngram_range"])
            stop_words = _from_utf8(saved["stop_words"])
            analyzer = Analyzer(re.compile(_from_utf8(saved["pattern"])),
                                frozenset(stop_words.split("\n") if stop_words else ()),
                                (low, high))  # fmt: skip
            tokens = _from_utf8(saved["tokens"])
            codes = {n: (saved[f"codes_{n}"], saved[f"columns_{n}"]) for n in range(low, high + 1)}
            return cls(analyzer, tokens.split("\n") if tokens else [], codes, saved["idf"],
                       _from_utf8(saved["norm"]) or None, bool(saved["sublinear_tf"]))  # fmt: skip

    def __reduce__(self) -> tuple[type[TermCounter], tuple[Any, ...]]:
        """Pickled (to reach workers) as its fields alone: workers rebuild the derived ones."""
        fields = (self.analyzer, self.tokens, self.codes, self.idf, self.norm, self.sublinear_tf)
        return (TermCounter, fields)

    @property
    def width(self) -> int:
        """Columns of the TF-IDF rows (the vocabulary's size)."""
        return len(self.idf)

    def count(
        self,
        texts: Sequence[str],
        duplicate_texts: Sequence[str] | None = None,
        duplicates: bool = True,
    ) -> Counts:
        """TF-IDF rows of texts and, if asked, hashed counts of duplicate_texts (default: the
        texts themselves, from the same tokens)."""
        flat: list[str] = []
        lens = np.zeros(len(texts), dtype=np.int64)
        hashed: list[Counter[str]] = []
        for d, text in enumerate(texts):
            own, found = self.analyzer.tokens(text)
            before = len(flat)
            flat += own
            lens[d] = len(flat) - before
            if duplicates and duplicate_texts is None:
                hashed.append(Counter(found))
        if duplicates and duplicate_texts is not None:
            hashed = [Counter(words(t.lower())) for t in duplicate_texts]
        get = self.token_ids.get
        tokens = _Tokens(np.fromiter(map(get, flat, itertools.repeat(-1)), np.int64, len(flat)),
                         lens)  # fmt: skip
        rows, cols = [], []
        for n, (codes, columns) in self.codes.items():
            doc, code = tokens.grams(n, self.radix)
            at = np.minimum(np.searchsorted(codes, code), max(len(codes) - 1, 0))
            hit = codes[at] == code if len(codes) else np.zeros(len(code), dtype=bool)
            rows.append(doc[hit])
            cols.append(columns[at[hit]])
        counts = sp.csr_matrix(
            (np.ones(sum(map(len, rows)), dtype=np.float32),
             (np.concatenate(rows), np.concatenate(cols))),
            shape=(len(texts), self.width),
        )  # fmt: skip
        counts.sum_duplicates()  # canonical: summed, sorted column indices
        tfidf = sp.csr_matrix(self.weighting.transform(counts, copy=False), dtype=np.float32)
        dup = sp.csr_matrix(self.hasher.transform(hashed), dtype=np.float32) if duplicates else None
        return Counts(tfidf, dup)
