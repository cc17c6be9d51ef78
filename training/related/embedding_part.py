"""The embedding part of the related similarity: each article's sentence embedding plus
pseudo-relevance feedback from its nearest articles (recommender/similarity.py has the blend).

Feedback lifts short texts most: an article's embedding borrows the mean of its
`embedding_prf_neighbours` nearest articles' embeddings (weight `embedding_prf_weight`), the
neighbours found by (1 - a) x TF-IDF cosine + a x embedding cosine (a = `embedding_prf_blend`)
with the light search the LSA feedback uses. A server repeats the same steps, exactly, for an
upserted article (recommender/live/vectors.py), from the raw embeddings kept beside the final
ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from recommender.similarity import expand_rows
from training.memory import release_memory
from training.related.lsa import FEEDBACK_SEARCH, LSA_BLOCK_ROWS
from training.related.params import RelatedParams
from training.search.neighbours import search

EXPAND_CELLS = 1 << 23
"""Cells of one feedback block's gathered neighbour rows (32 MB of float32)."""


@dataclass(frozen=True)
class EmbeddingPart:
    """Raw encoder rows, feedback neighbours, and the final L2-normalised rows."""

    raw: NDArray[np.float32]
    feedback: NDArray[np.int32]
    vectors: NDArray[np.float32]


def fit_embedding_part(
    matrix: sp.csr_matrix, raw: NDArray[np.float32], params: RelatedParams, progress: bool = False
) -> EmbeddingPart:
    """The final embedding rows of the corpus (raw rows alone when feedback is off)."""
    n_docs = len(raw)
    k = min(params.embedding_prf_neighbours, n_docs - 1)
    if k > 0 and params.embedding_prf_weight > 0:
        # Above 20k articles the pruned search must see at least k candidates per article.
        knobs = FEEDBACK_SEARCH | {
            "candidates": max(k, 30),
            "dense_candidates": max(k, 50),
            "shards": params.search_shards,
        }
        feedback = search(matrix, k, raw, params.embedding_prf_blend, progress=progress,
                          **knobs)[0]  # fmt: skip
        release_memory()
    else:
        feedback = np.zeros((n_docs, 0), dtype=np.int32)
    vectors = np.empty_like(raw)
    # expand_rows gathers (rows x neighbours x dims) floats, twice with its mask: at 100
    # neighbours x 384 dims a block of LSA_BLOCK_ROWS rows was 2 x 7.7 GB. Bound it instead.
    block = max(1, min(LSA_BLOCK_ROWS, EXPAND_CELLS // max(1, feedback.shape[1] * raw.shape[1])))
    for start in range(0, n_docs, block):
        stop = start + block
        vectors[start:stop] = expand_rows(
            raw[start:stop], raw, feedback[start:stop], params.embedding_prf_weight
        )
    return EmbeddingPart(raw, feedback, vectors)
