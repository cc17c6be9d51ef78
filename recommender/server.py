"""The gRPC server: a thin servicer over service.py, health, reflection and graceful shutdown."""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import redis.asyncio as aioredis
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from recommender import service
from recommender.config import Settings
from recommender.embedded import resolve_redis_url
from recommender.errors import NewsrecError, status_code
from recommender.store import Keys, Store
from recommender.v1 import recommender_pb2 as pb
from recommender.v1 import recommender_pb2_grpc as pb_grpc

log = logging.getLogger("newsrec.server")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Recommender"].full_name

R = TypeVar("R")


def grpc_errors(
    handler: Callable[..., Awaitable[R]],
) -> Callable[..., Awaitable[R]]:
    """Turn domain errors into their status code, and anything unexpected into INTERNAL."""

    @functools.wraps(handler)
    async def wrapped(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await handler(self, request, context)
        except NewsrecError as exc:
            await context.abort(status_code(exc), str(exc))
        except Exception:
            log.exception("%s failed", handler.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")
        raise AssertionError("unreachable: context.abort raises")

    return wrapped


class RecommenderServicer(pb_grpc.RecommenderServicer):
    """Each method hands the request to service.py."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @grpc_errors
    async def GetRelated(
        self, request: pb.GetRelatedRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRelatedResponse:
        return await service.get_related(self.store, request)

    @grpc_errors
    async def GetPopular(
        self, request: pb.GetPopularRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPopularResponse:
        return await service.get_popular(self.store, request)

    @grpc_errors
    async def GetModelInfo(
        self, request: pb.GetModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetModelInfoResponse:
        return await service.get_model_info(self.store)


def make_store(settings: Settings) -> Store:
    """An async Store on the configured (or embedded) Redis."""
    url = resolve_redis_url(settings.redis_url, settings.data_dir)
    client = aioredis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    return Store(
        client, Keys(settings.namespace), settings.pointer_cache_seconds, settings.cache_entries
    )


async def create_server(
    settings: Settings, store: Store | None = None
) -> tuple[grpc.aio.Server, int]:
    """Build and start a server on settings.host:settings.port (0 = any free port)."""
    store = store or make_store(settings)
    server = grpc.aio.server()
    pb_grpc.add_RecommenderServicer_to_server(RecommenderServicer(store), server)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise OSError(f"cannot bind {settings.host}:{settings.port}")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port


async def serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT, then let in-flight calls finish within the grace period."""
    store = make_store(settings)
    server, port = await create_server(settings, store)
    log.info(
        "serving recommender.v1 on %s:%d (namespace %r)", settings.host, port, settings.namespace
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info(
        "stopping: letting in-flight calls finish (up to %.0fs)", settings.shutdown_grace_seconds
    )
    await server.stop(settings.shutdown_grace_seconds)
    await store.client.aclose()
    log.info("stopped")
