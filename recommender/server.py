"""The gRPC server: a thin servicer over service.py, health, reflection and graceful shutdown."""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from recommender.cache import LRU
from recommender.config import Settings
from recommender.connect import async_client
from recommender.errors import NewsrecError, StoreUnavailable, status_code
from recommender.live.articles import ArticleWriter
from recommender.live.counters import LiveCounts
from recommender.live.events import EventWriter
from recommender.reader import Reader
from recommender.service import RecommenderService
from recommender.store.keys import Keys
from recommender.v1 import recommender_pb2 as pb
from recommender.v1 import recommender_pb2_grpc as pb_grpc

log = logging.getLogger("newsrec.server")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Recommender"].full_name

R = TypeVar("R")
_background: set[asyncio.Task[None]] = set()  # strong references to fire-and-forget tasks


def grpc_errors(
    handler: Callable[..., Awaitable[R]],
) -> Callable[..., Awaitable[R]]:
    """Turn domain errors into their status code, and anything unexpected into INTERNAL.

    For reads, a Redis outage is answered with the last good answer to the same request when
    this process has one (a stale box beats an empty one).
    """

    @functools.wraps(handler)
    async def wrapped(self: RecommenderServicer, request: Any, context: Any) -> R:
        try:
            return await handler(self, request, context)
        except StoreUnavailable as exc:
            fallback = self.last_good.get(_request_key(handler.__name__, request))
            if fallback is not None:
                log.warning("%s: %s; serving the last good answer", handler.__name__, exc)
                return fallback
            await context.abort(status_code(exc), str(exc))
        except NewsrecError as exc:
            await context.abort(status_code(exc), str(exc))
        except Exception:
            log.exception("%s failed", handler.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")
        raise AssertionError("unreachable: context.abort raises")

    return wrapped


def _request_key(method: str, request: Any) -> str:
    serialize = getattr(request, "SerializeToString", None)
    return f"{method}:{serialize(deterministic=True).hex()}" if serialize else ""


class RecommenderServicer(pb_grpc.RecommenderServicer):
    """Each method hands the request to RecommenderService."""

    def __init__(self, service: RecommenderService, last_good_entries: int) -> None:
        self.service = service
        self.last_good = LRU(last_good_entries)

    def _remember(self, method: str, request: Any, response: R) -> R:
        self.last_good.put(_request_key(method, request), response)
        return response

    @grpc_errors
    async def GetRelated(
        self, request: pb.GetRelatedRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRelatedResponse:
        return self._remember("GetRelated", request, await self.service.get_related(request))

    @grpc_errors
    async def GetPopular(
        self, request: pb.GetPopularRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPopularResponse:
        return self._remember("GetPopular", request, await self.service.get_popular(request))

    @grpc_errors
    async def GetModelInfo(
        self, request: pb.GetModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetModelInfoResponse:
        return self._remember("GetModelInfo", request, await self.service.get_model_info())

    @grpc_errors
    async def RecordEvents(
        self, request: pb.RecordEventsRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecordEventsResponse:
        return await self.service.record_events(request.events)

    @grpc_errors
    async def StreamEvents(
        self, request_iterator: AsyncIterator[pb.Event], context: grpc.aio.ServicerContext
    ) -> pb.RecordEventsResponse:
        return await self.service.stream_events(request_iterator)

    @grpc_errors
    async def StreamEventBatches(
        self,
        request_iterator: AsyncIterator[pb.RecordEventsRequest],
        context: grpc.aio.ServicerContext,
    ) -> pb.RecordEventsResponse:
        return await self.service.stream_event_batches(request_iterator)

    @grpc_errors
    async def UpsertArticles(
        self, request: pb.UpsertArticlesRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpsertArticlesResponse:
        return await self.service.upsert_articles(request)

    @grpc_errors
    async def DeleteArticle(
        self, request: pb.DeleteArticleRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteArticleResponse:
        return await self.service.delete_article(request)


def make_service(settings: Settings) -> RecommenderService:
    """The service on the configured (or embedded) Redis."""
    reader = Reader(
        async_client(settings),
        Keys(settings.namespace),
        settings.pointer_cache_seconds,
        settings.cache_entries,
    )
    return RecommenderService(
        reader,
        EventWriter(reader, settings.event_stream_max_batches, settings.sections_cache_entries),
        ArticleWriter(reader),
        LiveCounts(settings.live_cache_seconds),
        settings.answer_cache_entries,
    )


async def create_server(
    settings: Settings, service: RecommenderService | None = None
) -> tuple[grpc.aio.Server, int]:
    """Build and start a server on settings.host:settings.port (0 = any free port)."""
    service = service or make_service(settings)
    server = grpc.aio.server(options=[("grpc.so_reuseport", 1)])
    pb_grpc.add_RecommenderServicer_to_server(
        RecommenderServicer(service, settings.last_good_entries), server
    )
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
    service.reader.start_sync()

    async def stop_sync_when_done() -> None:
        await server.wait_for_termination()
        await service.reader.stop_sync()

    _background.add(asyncio.get_running_loop().create_task(stop_sync_when_done()))
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port


async def serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT, then let in-flight calls finish within the grace period."""
    service = make_service(settings)
    server, port = await create_server(settings, service)
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
    await service.reader.client.aclose()
    log.info("stopped")
