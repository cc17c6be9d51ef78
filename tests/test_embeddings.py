"""The sentence-embedding part: the encoder runs the packaged model offline as
sentence-transformers would, each article is encoded once (the store keyed by content hash and
model), and a server places an upserted article with the same embedding blend as training."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import grpc
import numpy as np
import pytest
import redis

from recommender.config import Settings
from recommender.domain import Article
from recommender.encoder import (
    DEFAULT_MODEL,
    EncoderUnavailable,
    article_text,
    export_path,
    load_encoder,
    model_path,
)
from recommender.live.liverows import LiveVector
from recommender.store.keys import Keys
from recommender.v1 import recommender_pb2 as pb
from recommender.v1 import recommender_pb2_grpc as pb_grpc
from tests.corpus import make_articles, write_corpus
from tests.helpers import as_articles, newsrec_env, trained_and_served
from training.bench.processes import free_port, wait_serving
from training.pipeline import TrainConfig, train
from training.related.embeddings import MAX_SHARDS, EmbeddingStore, embed_articles
from training.related.params import RelatedParams

STORIES = [
    Article("a", "Central bank raises interest rates", "Borrowing costs rise again."),
    Article("b", "Rates go up as inflation bites", "The bank lifted its key rate."),
    Article("c", "Striker scores twice in cup final", "A late goal sealed the trophy."),
]


def test_encoder_gives_normalised_vectors_that_tell_topics_apart() -> None:
    encoder = load_encoder(DEFAULT_MODEL)
    rows = encoder.encode([article_text(a) for a in STORIES])
    assert rows.shape == (3, 384) and rows.dtype == np.float32
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    same, other = float(rows[0] @ rows[1]), float(rows[0] @ rows[2])
    assert same > other + 0.2, (same, other)


def test_encoder_matches_sentence_transformers_on_the_same_folder() -> None:
    """We run the model through transformers (sentence-transformers imports scikit-learn);
    the vectors must be the ones sentence-transformers computes."""
    sentence_transformers = pytest.importorskip("sentence_transformers")
    texts = [article_text(a) for a in STORIES]
    reference = sentence_transformers.SentenceTransformer(
        str(model_path(DEFAULT_MODEL)), device="cpu", local_files_only=True
    )
    reference.max_seq_length = 128
    expected = reference.encode(texts, normalize_embeddings=True)
    assert np.allclose(load_encoder(DEFAULT_MODEL).encode(texts), expected, atol=1e-5)


def test_a_users_onnx_export_and_tokenizer_encode_like_the_default(tmp_path: Path) -> None:
    """`embedding_model` may name a folder holding model.onnx and tokenizer.json, or the .onnx
    file itself: no torch needed; the same network gives the same vectors."""
    packaged = model_path(DEFAULT_MODEL)
    texts = [article_text(a) for a in STORIES] + ["", "A short title"]
    expected = load_encoder(DEFAULT_MODEL).encode(texts)
    own = tmp_path / "own-onnx"
    own.mkdir()
    shutil.copy(export_path(DEFAULT_MODEL, packaged), own / "model.onnx")
    shutil.copy(packaged / "tokenizer.json", own / "tokenizer.json")
    shutil.copytree(packaged / "1_Pooling", own / "1_Pooling")
    for name in (str(own), str(own / "model.onnx")):
        assert np.allclose(load_encoder(name).encode(texts), expected, atol=1e-5), name
    (own / "tokenizer.json").unlink()
    with pytest.raises(EncoderUnavailable, match=r"tokenizer\.json"):
        model_path(str(own))


def test_an_export_is_made_once_and_again_when_the_weights_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ONNX export is keyed by the weights file: a process that finds it loads no torch;
    new weights (a reinstall, another folder) are exported again."""
    folder = tmp_path / "model"
    shutil.copytree(model_path(DEFAULT_MODEL), folder)
    monkeypatch.setenv("NEWSREC_ENCODER_CACHE", str(tmp_path / "cache"))
    first = export_path(str(folder), folder)
    assert not first.exists()
    load_encoder(str(folder)).encode(["a text"])  # exports, with torch
    assert first.is_file()
    script = (
        "import sys\nfrom recommender.encoder import load_encoder\n"
        f"load_encoder({str(folder)!r}).encode(['a text'])\n"
        "print('torch' in sys.modules)\n"
    )
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True)  # fmt: skip
    assert loaded.stdout.split() == ["False"]  # the cached export loads without torch
    weights = folder / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert export_path(str(folder), folder) != first


def test_unknown_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EncoderUnavailable, match="neither a packaged model"):
        model_path(str(tmp_path / "no-such-model"))


def test_each_article_is_encoded_once_and_edits_or_a_new_model_re_encode(tmp_path: Path) -> None:
    articles = as_articles(make_articles(per_topic=4))
    first, stats = embed_articles(articles, DEFAULT_MODEL, tmp_path)
    assert (stats.reused, stats.encoded) == (0, len(articles))
    again, stats = embed_articles(articles, DEFAULT_MODEL, tmp_path)
    assert (stats.reused, stats.encoded) == (len(articles), 0)
    assert np.allclose(again, first, atol=1e-6)
    edited = list(articles)
    edited[3] = replace(edited[3], title="A wholly different headline about the weather")
    rows, stats = embed_articles(edited, DEFAULT_MODEL, tmp_path)
    assert (stats.reused, stats.encoded) == (len(articles) - 1, 1)
    assert not np.allclose(rows[3], first[3], atol=1e-3)
    assert np.allclose(np.delete(rows, 3, axis=0), np.delete(first, 3, axis=0), atol=1e-6)
    # Another model (the same weights in a folder of the user's own) is another store: every
    # article is encoded again, and the first model's vectors stay where they were.
    own = tmp_path / "own-model"
    shutil.copytree(model_path(DEFAULT_MODEL), own)
    _, stats = embed_articles(articles, str(own), tmp_path)
    assert (stats.reused, stats.encoded) == (0, len(articles))
    assert len(EmbeddingStore(tmp_path, DEFAULT_MODEL).load()) == len(articles) + 1


def test_a_damaged_shard_is_ignored_and_its_articles_encoded_again(tmp_path: Path) -> None:
    articles = as_articles(make_articles(per_topic=2))
    embed_articles(articles, DEFAULT_MODEL, tmp_path)
    store = EmbeddingStore(tmp_path, DEFAULT_MODEL)
    [vectors] = list(store.folder.glob("*.vectors.npy"))
    np.save(vectors, np.zeros((1, 384), dtype=np.float32))
    _, stats = embed_articles(articles, DEFAULT_MODEL, tmp_path)
    assert stats.encoded == len(articles)


def test_a_shard_merged_away_by_another_job_is_skipped(tmp_path: Path) -> None:
    """Two jobs share a store: shards one job listed may be merged away by the other before
    it reads them; it reads the merged copy instead of failing."""
    rows = np.eye(MAX_SHARDS + 2, 384, dtype=np.float32)
    first = EmbeddingStore(tmp_path, DEFAULT_MODEL)
    first.add([bytes([0] * 16)], rows[:1])
    listed = first._shards()
    other = EmbeddingStore(tmp_path, DEFAULT_MODEL)
    for n in range(1, MAX_SHARDS + 2):  # the 17th shard merges every shard into one
        other.add([bytes([n] * 16)], rows[n : n + 1])
    assert not set(listed) & set(other._shards())
    first._shards = lambda: [*listed, *other._shards()]  # type: ignore[method-assign]
    found = first.load()
    assert len(found) == MAX_SHARDS + 2 and np.array_equal(found[bytes([0] * 16)], rows[0])


def test_served_embedding_blend_equals_training(tmp_path: Path) -> None:
    """An upserted copy of a trained article gets the scores training gave it, embedding part
    and its feedback included."""
    articles = as_articles(make_articles(per_topic=25))
    params = RelatedParams(lsa_dims=20, embedding_prf_neighbours=8)
    model, index = trained_and_served(articles, params, tmp_path)
    assert index.embedding is not None and index.lsa is not None
    for row in (0, 30, 77):
        vector = index.vectorize(articles[row])
        blended = index.score(vector, articles[row].id).dense()[0]
        trained = model.arrays["indices"][row][:10]
        # within int8 rows' error (recommender/live/compact.py); a wrong weight moves 1e-2
        assert np.allclose(blended[trained], model.arrays["scores"][row][:10], atol=2e-3)
        stored = LiveVector.split(vector.tfidf, vector.dense(), *index.dims)
        assert stored.embedding is not None and vector.embedding is not None
        assert np.array_equal(stored.embedding, vector.embedding)


def test_a_read_only_import_of_the_serving_code_loads_no_torch() -> None:
    script = (
        "import sys, recommender.server, recommender.live.vectors, recommender.encoder\n"
        "print(sorted(m for m in ('torch', 'transformers', 'sklearn') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=True)  # fmt: skip
    assert done.stdout.strip() == "[]"


def test_nightly_runs_reuse_embeddings_and_a_replica_without_the_model_refuses_upserts(
    settings: Settings, client: redis.Redis, tmp_path: Path
) -> None:
    """Training records what it encoded and reused; a writer replica whose embedding model is
    gone answers upserts FAILED_PRECONDITION (naming the model) and keeps serving reads."""
    own = tmp_path / "own-model"
    shutil.copytree(model_path(DEFAULT_MODEL), own)
    articles, _ = write_corpus(tmp_path)
    params = replace(RelatedParams(), embedding_model=str(own))
    config = TrainConfig(articles=articles, model_dir=settings.model_dir, related=params,
                         progress=False, embedding_store=tmp_path / "store")  # fmt: skip
    keys = Keys(settings.namespace)
    first = train(config, client, keys, log=lambda _m: None)
    count = first.meta["articles"]
    assert first.meta["embeddings"]["encoded"] == count and first.meta["embeddings"]["reused"] == 0
    second = train(config, client, keys, log=lambda _m: None)
    assert (second.meta["embeddings"]["encoded"], second.meta["embeddings"]["reused"]) == (0, count)
    shutil.rmtree(own)
    port = free_port()
    command = [sys.executable, "-m", "newsrec.cli", "serve", "--port", str(port)]
    server = subprocess.Popen(command, env=newsrec_env(settings), stderr=subprocess.PIPE, text=True)
    try:
        wait_serving(f"127.0.0.1:{port}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.RecommenderStub(channel)
            article = pb.ArticleInput(article_id="tech-new", title="A new chip and battery")
            with pytest.raises(grpc.RpcError) as caught:
                stub.UpsertArticles(pb.UpsertArticlesRequest(articles=[article]), timeout=60)
            assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert str(own) in (caught.value.details() or "")
            assert stub.GetRelated(pb.GetRelatedRequest(article_id="tech-01")).items
    finally:
        server.terminate()
        _, log = server.communicate(timeout=30)
    assert "cannot score upserts" in log and "Traceback" not in log
