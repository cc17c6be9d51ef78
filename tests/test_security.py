"""Trust: write (and read) tokens, gRPC over TLS and mTLS, Redis with a password, an ACL user
and TLS, request bytes that do not parse, and secrets that never reach a log or an error."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
import redis

from recommender.config import Settings
from recommender.connect import sync_client
from recommender.store.keys import Keys
from recommender.v1 import recommender_pb2 as pb
from recommender.v1 import recommender_pb2_grpc as pb_grpc
from tests.corpus import write_corpus
from tests.helpers import (
    Certificates,
    RedisProcess,
    ServerThread,
    make_certificates,
    newsrec,
    newsrec_env,
    redis_binary,
)
from training.pipeline import TrainConfig, train

TOKENS = "ci=s3cret-one,old=s3cret-two"


def train_into(client: redis.Redis, settings: Settings, tmp_path: Path) -> None:
    articles, clicks = write_corpus(tmp_path)
    config = TrainConfig(articles=articles, clicks=clicks, model_dir=settings.model_dir,
                         progress=False)  # fmt: skip
    train(config, client, Keys(settings.namespace), log=lambda _m: None)


def code_of(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    return info.value.code(), info.value.details() or ""


@pytest.fixture
def guarded(
    tmp_path: Path, settings: Settings, client: redis.Redis
) -> Iterator[tuple[ServerThread, Settings]]:
    train_into(client, settings, tmp_path)
    guarded = replace(settings, write_token=TOKENS)
    server = ServerThread(guarded)
    yield server, guarded
    server.stop()


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def test_writes_need_a_write_token_reads_stay_open(
    guarded: tuple[ServerThread, Settings], caplog: pytest.LogCaptureFixture
) -> None:
    server, settings = guarded
    request = pb.RecordEventsRequest(events=[pb.Event(article_id="tech-01", session_id="r1")])
    code, message = code_of(lambda: server.stub.RecordEvents(request))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "write token" in message
    code, _ = code_of(lambda: server.stub.RecordEvents(request, metadata=bearer("s3cret-on")))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert server.stub.RecordEvents(request, metadata=bearer("s3cret-one")).accepted == 1
    assert server.stub.RecordEvents(request, metadata=bearer("s3cret-two")).deduplicated == 1
    code, _ = code_of(lambda: server.stub.DeleteArticle(pb.DeleteArticleRequest(article_id="x")))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert server.stub.GetRelated(pb.GetRelatedRequest(article_id="tech-01")).items
    caplog.set_level(logging.INFO, logger="newsrec.audit")
    server.stub.DeleteArticle(
        pb.DeleteArticleRequest(article_id="tech-03"), metadata=bearer("s3cret-two")
    )
    lines = [r.getMessage() for r in caplog.records if r.name == "newsrec.audit"]
    assert lines == ["DeleteArticle article 'tech-03' by token:old: OK"]
    assert "s3cret" not in repr(settings)  # tokens never reach a log through the settings


def test_a_read_token_closes_reads(tmp_path: Path, settings: Settings, client: redis.Redis) -> None:
    train_into(client, settings, tmp_path)
    server = ServerThread(replace(settings, write_token=TOKENS, read_token="reader=r3ad"))
    try:
        request = pb.GetRelatedRequest(article_id="tech-01")
        code, message = code_of(lambda: server.stub.GetRelated(request))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "read token" in message
        assert server.stub.GetRelated(request, metadata=bearer("r3ad")).items
        assert server.stub.GetRelated(request, metadata=bearer("s3cret-one")).items
    finally:
        server.stop()


def tls_server(settings: Settings, certs: Certificates, mutual: bool) -> ServerThread:
    return ServerThread(replace(
        settings, tls_cert=str(certs.server_cert), tls_key=str(certs.server_key),
        tls_client_ca=str(certs.ca) if mutual else "",
    ))  # fmt: skip


def secure_stub(port: int, certs: Certificates, client_cert: bool) -> pb_grpc.RecommenderStub:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=certs.ca.read_bytes(),
        private_key=certs.client_key.read_bytes() if client_cert else None,
        certificate_chain=certs.client_cert.read_bytes() if client_cert else None,
    )
    return pb_grpc.RecommenderStub(grpc.secure_channel(f"localhost:{port}", credentials))


@pytest.mark.slow
def test_grpc_over_tls_and_mtls(tmp_path: Path, settings: Settings, client: redis.Redis) -> None:
    train_into(client, settings, tmp_path)
    certs = make_certificates(tmp_path / "certs")
    request = pb.GetRelatedRequest(article_id="tech-01")
    server = tls_server(settings, certs, mutual=False)
    try:
        assert secure_stub(server.port, certs, client_cert=False).GetRelated(request).items
        code, _ = code_of(lambda: server.stub.GetRelated(request, timeout=3))  # plaintext
        assert code == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop()
    server = tls_server(settings, certs, mutual=True)
    try:
        assert secure_stub(server.port, certs, client_cert=True).GetRelated(request).items
        anonymous = secure_stub(server.port, certs, client_cert=False)
        code, _ = code_of(lambda: anonymous.GetRelated(request, timeout=3))
        assert code == grpc.StatusCode.UNAVAILABLE  # no client certificate: no handshake
    finally:
        server.stop()


@pytest.mark.slow
def test_redis_with_a_password_and_an_acl_user(tmp_path: Path, settings: Settings) -> None:
    own = RedisProcess(tmp_path / "redis", password="adm1n-pw")
    try:
        own.client().execute_command(
            "ACL", "SETUSER", "newsrec", "on", ">us3r-pw", "~*", "&*", "+@all"
        )
        user = replace(settings, redis_url=f"redis://newsrec:us3r-pw@127.0.0.1:{own.port}/0")
        train_into(sync_client(user), user, tmp_path)
        server = ServerThread(user)
        try:
            assert server.stub.GetRelated(pb.GetRelatedRequest(article_id="tech-01")).items
        finally:
            server.stop()
        wrong = f"redis://newsrec:wr0ng-pw@127.0.0.1:{own.port}/0"
        done = newsrec(replace(settings, redis_url=wrong), "versions")
        assert done.returncode == 2 and "Redis" in done.stderr
        assert "wr0ng-pw" not in done.stderr + done.stdout  # the password never shows
    finally:
        own.kill()


def tls_redis_or_skip(folder: Path, certs: Certificates) -> RedisProcess:
    try:
        return RedisProcess(folder, "--tls-auth-clients", "yes", tls=certs)
    except RuntimeError:
        pytest.skip(f"{redis_binary()} cannot serve TLS (built without it)")


@pytest.mark.slow
def test_redis_over_tls_with_a_client_certificate(tmp_path: Path, settings: Settings) -> None:
    certs = make_certificates(tmp_path / "certs")
    own = tls_redis_or_skip(tmp_path / "redis", certs)
    try:
        secure = replace(settings, redis_url=own.url, redis_tls_ca=str(certs.ca),
                         redis_tls_cert=str(certs.client_cert),
                         redis_tls_key=str(certs.client_key))  # fmt: skip
        train_into(sync_client(secure), secure, tmp_path)
        server = ServerThread(secure)
        try:
            assert server.stub.GetRelated(pb.GetRelatedRequest(article_id="tech-01")).items
        finally:
            server.stop()
        with pytest.raises(redis.ConnectionError):  # no client certificate: refused
            sync_client(replace(secure, redis_tls_cert="", redis_tls_key=""))
    finally:
        own.kill()


def test_request_bytes_that_do_not_parse_are_invalid_argument_without_a_traceback(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    raw = server.channel.unary_unary(
        "/recommender.v1.Recommender/GetRelated",
        request_serializer=lambda data: data,
        response_deserializer=pb.GetRelatedResponse.FromString,
    )
    for _ in range(50):
        code, message = code_of(lambda: raw(b"\xff\xff\xff\x0f garbage"))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert "do not parse as GetRelatedRequest" in message
    stream = server.channel.stream_unary(
        "/recommender.v1.Recommender/StreamEventBatches",
        request_serializer=lambda data: data,
        response_deserializer=pb.RecordEventsResponse.FromString,
    )
    code, message = code_of(lambda: stream(iter([b"\x0a\x05\x0a\x01", b"\xff"])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "do not parse" in message
    warnings = [r for r in caplog.records if "do not parse" in r.getMessage()]
    assert 1 <= len(warnings) <= 2  # rate-limited: not one a call
    assert not [r for r in caplog.records if r.exc_info]  # no traceback anywhere


def test_newsrec_serve_masks_the_redis_password(settings: Settings) -> None:
    url = "redis://:t0p-s3cret@127.0.0.1:1/0"  # nobody listens: the server starts anyway
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsrec.cli", "serve", "--port", "0"],
        env=newsrec_env(replace(settings, redis_url=url)),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "serving recommender.v1" in line and "redis://:***@127.0.0.1:1/0" in line
        assert "t0p-s3cret" not in line
    finally:
        proc.terminate()
        _, rest = proc.communicate(timeout=30)
        assert "t0p-s3cret" not in rest
