"""The related-list parameters: how text becomes vectors and how many neighbours are kept."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from recommender.encoder import DEFAULT_MODEL
from recommender.similarity import DUPLICATE_THRESHOLD, TOP_K
from recommender.textmodel import LETTERS_ONLY, WORDS
from training.related.termcount import MAX_NGRAM


@dataclass(frozen=True)
class RelatedParams:
    """How text becomes vectors and how many neighbours to keep. Defaults chosen with
    `newsrec tune --grid examples/tune-related.toml` (see the README)."""

    title_weight: int = 1
    sublinear_tf: bool = True
    stop_words: str | None = "english"
    ngram_max: int = 2
    min_df: int = 2
    max_df: float = 0.5
    letters_only: bool = True
    lsa_weight: float = 0.5
    """Share of the LSA (TruncatedSVD) cosine in the similarity; 0 = TF-IDF only."""
    lsa_dims: int = 100
    lsa_max_terms: int = 50_000
    """LSA uses only this many most frequent terms: bounds the saved components (dims x terms)."""
    prf_neighbours: int = 10
    """Pseudo-relevance feedback for the LSA part: add the mean of this many nearest articles'
    TF-IDF rows (0 = off; no effect when lsa_weight is 0)."""
    prf_weight: float = 1.0
    """Weight of that mean against the article's own row."""
    embedding_weight: float = 0.8
    """Share of the sentence-embedding cosine in the similarity (0 = off: no model loaded)."""
    embedding_model: str = DEFAULT_MODEL
    """A packaged model's name or a sentence-transformers folder (recommender/encoder.py)."""
    embedding_prf_neighbours: int = 100
    """Pseudo-relevance feedback for the embedding part: add the mean embedding of this many
    nearest articles (0 = off)."""
    embedding_prf_weight: float = 4.0
    """Weight of that mean against the article's own embedding."""
    embedding_prf_blend: float = 0.3
    """Those neighbours are nearest by (1 - a) x TF-IDF cosine + a x embedding cosine."""
    top_k: int = TOP_K
    duplicate_threshold: float = DUPLICATE_THRESHOLD
    """Articles at least this similar on the full-vocabulary representation are the same story
    republished: a list shows one story once (above 1 turns detection off)."""
    recency_window_days: float = 0.0
    """Only candidates published within this many days of the article (0 = off)."""
    recency_half_life_days: float = 0.0
    """Scores halve per this many days between article and candidate (0 = off)."""
    explain: bool = False
    """Publish why each list holds what it holds (training/related/explain.py): what
    GetRelated(explain=true) answers; about 1.5 kB of Redis per article."""
    search_shards: int = 1
    """The neighbour searches above 20k articles cut the corpus into this many shards, each
    kept by one worker (training/search/sharded.py): on a dask cluster of W workers, W shards
    make each worker hold 1/W of the rows. The lists are the same wherever they run."""

    def __post_init__(self) -> None:
        checks = {
            "title_weight >= 0": self.title_weight >= 0,
            f"1 <= ngram_max <= {MAX_NGRAM}": 1 <= self.ngram_max <= MAX_NGRAM,
            "min_df >= 1": self.min_df >= 1,
            "0 < max_df <= 1": 0 < self.max_df <= 1,
            "0 <= lsa_weight <= 1": 0 <= self.lsa_weight <= 1,
            "lsa_dims >= 1": self.lsa_dims >= 1,
            "lsa_max_terms >= 2": self.lsa_max_terms >= 2,
            "prf_neighbours >= 0": self.prf_neighbours >= 0,
            "prf_weight >= 0": self.prf_weight >= 0,
            "0 <= embedding_weight <= 1": 0 <= self.embedding_weight <= 1,
            "embedding_model not empty": bool(self.embedding_model.strip()),
            "embedding_prf_neighbours >= 0": self.embedding_prf_neighbours >= 0,
            "embedding_prf_weight >= 0": self.embedding_prf_weight >= 0,
            "0 <= embedding_prf_blend <= 1": 0 <= self.embedding_prf_blend <= 1,
            "top_k >= 1": self.top_k >= 1,
            "duplicate_threshold > 0": self.duplicate_threshold > 0,
            "recency_window_days >= 0": self.recency_window_days >= 0,
            "recency_half_life_days >= 0": self.recency_half_life_days >= 0,
            "search_shards >= 1": self.search_shards >= 1,
        }
        broken = [rule for rule, ok in checks.items() if not ok]
        if broken:
            raise ValueError(f"related parameters out of range: need {', '.join(broken)}")

    def as_dict(self) -> dict[str, object]:
        """Plain values for the manifest."""
        return asdict(self)


def make_vectorizer(params: RelatedParams, n_docs: int) -> TfidfVectorizer:
    """An unfitted vectorizer; min_df is capped so tiny corpora keep a vocabulary."""
    return TfidfVectorizer(
        sublinear_tf=params.sublinear_tf,
        stop_words=params.stop_words,
        ngram_range=(1, params.ngram_max),
        min_df=min(params.min_df, max(1, n_docs // 10)),
        max_df=params.max_df if n_docs >= 20 else 1.0,
        token_pattern=LETTERS_ONLY if params.letters_only else WORDS,
        dtype=np.float32,
    )
