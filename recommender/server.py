"""The gRPC server: the servicer (servicer.py) behind one interceptor (interceptors.py), the
standard health service following what the replica can serve (health.py), reflection, TLS or
mTLS when configured, metrics, and a graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from recommender import metrics
from recommender.config import ConfigError, Settings, mask_url
from recommender.connect import async_client, check_server_client, keys_for
from recommender.health import StoreHealth
from recommender.interceptors import ServerInterceptor
from recommender.live.articles import ArticleWriter
from recommender.live.compact import settle_heap
from recommender.live.counters import LiveCounts
from recommender.live.events import EventWriter
from recommender.reader import Reader
from recommender.service import RecommenderService
from recommender.servicer import RecommenderServicer
from recommender.v1 import recommender_pb2 as pb
from recommender.v1 import recommender_pb2_grpc as pb_grpc
from recommender.validation import Limits

log = logging.getLogger("newsrec.server")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Recommender"].full_name
"""Its health status is the replica's readiness; the overall status "" is its liveness."""
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
_background: set[asyncio.Task[None]] = set()  # strong references to fire-and-forget tasks


def make_service(settings: Settings) -> RecommenderService:
    """The service on the configured (or embedded) Redis."""
    reader = Reader(
        async_client(settings),
        keys_for(settings),
        settings.pointer_cache_seconds,
        settings.cache_entries,
        StoreHealth(settings.redis_grace_seconds),
    )
    return RecommenderService(
        reader,
        EventWriter(reader, settings.event_stream_max_batches, settings.sections_cache_entries,
                    settings.batch_id_ttl_seconds),
        ArticleWriter(reader, Path(settings.writer_dir) if settings.writer_dir else None),
        LiveCounts(settings.live_cache_seconds),
        settings.answer_cache_entries,
        Limits.from_settings(settings),
    )  # fmt: skip


def _credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS (and client-certificate) credentials from the tls_* files; None: plaintext."""
    if not settings.tls_cert:
        return None

    def read(setting: str, path: str) -> bytes:
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{setting} {path}: {exc.strerror or exc}") from None

    pair = (read("tls_key", settings.tls_key), read("tls_cert", settings.tls_cert))
    client_ca = read("tls_client_ca", settings.tls_client_ca) if settings.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def _health(server: grpc.aio.Server, service: RecommenderService) -> health.aio.HealthServicer:  # type: ignore[name-defined]
    """The health service: "" SERVING while the process runs; the Recommender service's status
    set by the reader's sync loop whenever readiness changes."""
    servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    loop = asyncio.get_running_loop()

    def report(serving: bool) -> None:
        metrics.HEALTH.set(int(serving))
        task = loop.create_task(servicer.set(SERVICE_NAME, SERVING if serving else NOT_SERVING))
        _background.add(task)
        task.add_done_callback(_background.discard)

    service.reader.on_health = report
    return servicer


async def create_server(
    settings: Settings, service: RecommenderService | None = None
) -> tuple[grpc.aio.Server, int]:
    """Build and start a server on settings.host:settings.port (0 = any free port)."""
    service = service or make_service(settings)
    interceptor = ServerInterceptor(settings.write_token, settings.read_token, settings.access_log)
    # Every valid UpsertArticles fits, so a too-large one gets newsrec's INVALID_ARGUMENT.
    receive = max(settings.grpc_max_receive_bytes, settings.upsert_max_bytes)
    options = [("grpc.so_reuseport", 1), ("grpc.max_receive_message_length", receive)]
    server = grpc.aio.server(interceptors=[interceptor], options=options)
    servicer = RecommenderServicer(
        service, settings.last_good_entries, settings.redis_timeout_seconds, settings.role
    )
    pb_grpc.add_RecommenderServicer_to_server(servicer, server)
    health_servicer = _health(server, service)
    names = (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name)
    reflection.enable_server_reflection((*names, reflection.SERVICE_NAME), server)
    address = f"{settings.host}:{settings.port}"
    credentials = _credentials(settings)
    port = (
        server.add_secure_port(address, credentials)
        if credentials
        else server.add_insecure_port(address)
    )
    if port == 0:
        raise OSError(f"cannot bind {address}")
    await health_servicer.set("", SERVING)
    await health_servicer.set(SERVICE_NAME, NOT_SERVING)  # until the first sync finds a model
    await server.start()
    service.reader.start_sync()

    async def stop_sync_when_done() -> None:
        await server.wait_for_termination()
        await service.reader.stop_sync()

    _background.add(asyncio.get_running_loop().create_task(stop_sync_when_done()))
    return server, port


async def serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT, then let in-flight calls finish within the grace period."""
    if settings.metrics_port:
        metrics.serve_metrics(settings.metrics_port)
    service = make_service(settings)
    await check_server_client(service.reader.client, settings)
    server, port = await create_server(settings, service)
    settle_heap()  # what startup loaded is never scanned by the collector again
    log.info(
        "serving recommender.v1 on %s:%d (role %s; %s; namespace %r; Redis %s%s%s%s)",
        settings.host, port, settings.role, "TLS" if settings.tls_cert else "plaintext",
        settings.namespace, mask_url(settings.redis_url) or "embedded",
        " (cluster)" if settings.redis_cluster else "",
        "; write tokens required" if settings.write_token else "",
        f"; metrics on :{settings.metrics_port}" if settings.metrics_port else "",
    )  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info(
        "stopping: letting in-flight calls finish (up to %.0fs)", settings.shutdown_grace_seconds
    )
    await server.stop(settings.shutdown_grace_seconds)
    await service.reader.client.aclose()
    log.info("stopped")
