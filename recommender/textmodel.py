"""The text representation shared by training and live upserts: document text and the fitted
TF-IDF vectorizer, saved as JSON (vocabulary + idf) so loading a model never runs code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from recommender.domain import Article

# Parameters that are plain data and define the vectorizer's behaviour.
_SAVED_PARAMS = (
    "lowercase", "strip_accents", "stop_words", "token_pattern", "ngram_range", "analyzer",
    "sublinear_tf", "norm", "use_idf", "smooth_idf", "binary",
)  # fmt: skip


def document_text(article: Article, title_weight: int) -> str:
    """Title repeated title_weight times (titles say what a story is about), body, then tags."""
    parts = [article.title] * title_weight + [article.body, " ".join(article.tags)]
    return "\n".join(p for p in parts if p)


def save_vectorizer(vectorizer: TfidfVectorizer, path: Path, title_weight: int) -> None:
    """Write the fitted vectorizer as JSON."""
    path.write_text(json.dumps(vectorizer_to_json(vectorizer, title_weight), separators=(",", ":")))


def vectorizer_to_json(vectorizer: TfidfVectorizer, title_weight: int) -> dict[str, Any]:
    """The fitted vectorizer as plain JSON-ready data."""
    params = {name: getattr(vectorizer, name) for name in _SAVED_PARAMS}
    if isinstance(params["stop_words"], frozenset | set):
        params["stop_words"] = sorted(params["stop_words"])
    vocabulary = {term: int(index) for term, index in vectorizer.vocabulary_.items()}
    return {
        "format": "newsrec-tfidf-1",
        "title_weight": title_weight,
        "params": params,
        "vocabulary": vocabulary,
        "idf": vectorizer.idf_.tolist(),
    }


def load_vectorizer(path: Path) -> tuple[TfidfVectorizer, int]:
    """Read a vectorizer written by save_vectorizer; returns it with its title weight."""
    data = json.loads(path.read_text())
    if data.get("format") != "newsrec-tfidf-1":
        raise ValueError(f"{path}: not a newsrec TF-IDF vectorizer file")
    return vectorizer_from_json(data)


def vectorizer_from_json(data: dict[str, Any]) -> tuple[TfidfVectorizer, int]:
    """Rebuild a fitted vectorizer from its JSON form (file or Redis value)."""
    params = dict(data["params"])
    params["ngram_range"] = tuple(params["ngram_range"])
    vectorizer = TfidfVectorizer(vocabulary=data["vocabulary"], dtype=np.float32, **params)
    vectorizer.idf_ = np.asarray(data["idf"], dtype=np.float64)
    return vectorizer, int(data["title_weight"])
