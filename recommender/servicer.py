"""The gRPC servicer: each method hands the request to service.py; domain errors become status
codes, a call never outlives its deadline (or redis_timeout_seconds) waiting on Redis, and a
read that Redis cannot serve gets the last good answer to the same request when there is one."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from recommender import metrics
from recommender.cache import LRU
from recommender.errors import (
    DeadlineExceeded,
    NewsrecError,
    StoreUnavailable,
    WrongRole,
    status_code,
)
from recommender.interceptors import CALLER
from recommender.service import RecommenderService
from recommender.v1 import recommender_pb2 as pb
from recommender.v1 import recommender_pb2_grpc as pb_grpc

log = logging.getLogger("newsrec.server")
R = TypeVar("R")
BOUNDED = frozenset({"GetRelated", "GetPopular", "GetModelInfo", "RecordEvents", "DeleteArticle",
                     "PinArticle", "BlockArticle", "ListRules", "RemoveRule"})  # fmt: skip
"""Calls that finish within redis_timeout_seconds even when the client sets no deadline (an
upsert may load a version's vectors first, and a stream lasts as long as its client sends)."""
ROLE_METHODS = {
    "reader": frozenset({"GetRelated", "GetPopular"}),
    "writer": frozenset({"UpsertArticles", "DeleteArticle"}),
}
"""Calls only that role (or "all") answers; the others (model info, events) every role does."""


def grpc_errors(
    handler: Callable[..., Awaitable[R]],
) -> Callable[..., Awaitable[R]]:
    """Turn domain errors into their status code, and anything unexpected into INTERNAL; bound
    the call's time (see the module doc)."""
    method = handler.__name__

    @functools.wraps(handler)
    async def wrapped(self: RecommenderServicer, request: Any, context: Any) -> R:
        try:
            self.check_role(method)
            return await self.bounded(method, handler(self, request, context), context)
        except StoreUnavailable as exc:
            fallback = self.last_good.get(_request_key(method, request))
            if fallback is not None:
                metrics.LAST_GOOD.inc()
                log.debug("%s: %s; serving the last good answer", method, exc)
                return fallback
            await context.abort(status_code(exc), str(exc))
        except NewsrecError as exc:
            await context.abort(status_code(exc), str(exc))
        except Exception:
            log.exception("%s failed", method)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")
        raise AssertionError("unreachable: context.abort raises")

    return wrapped


def caller(context: Any) -> str:
    """Who stands in for the session of a click without one: the token's name where tokens are
    set (interceptors.CALLER), else the gRPC peer (its address; the port is dropped later)."""
    who = CALLER.get()
    return who if who.startswith("token:") else context.peer()


def _request_key(method: str, request: Any) -> str:
    serialize = getattr(request, "SerializeToString", None)
    return f"{method}:{serialize(deterministic=True).hex()}" if serialize else ""


class RecommenderServicer(pb_grpc.RecommenderServicer):
    """Each method hands the request to RecommenderService."""

    def __init__(
        self,
        service: RecommenderService,
        last_good_entries: int,
        redis_timeout: float = 2.0,
        role: str = "all",
    ) -> None:
        self.service = service
        self.last_good = LRU(last_good_entries)
        self.redis_timeout = redis_timeout
        self.role = role

    def check_role(self, method: str) -> None:
        """WrongRole when `method` belongs to a role this replica does not have."""
        for role, methods in ROLE_METHODS.items():
            if method in methods and self.role not in (role, "all"):
                raise WrongRole(
                    f"{method}: this replica serves the {self.role} role (NEWSREC_ROLE="
                    f"{self.role}); send {method} to a replica with role {role} or all"
                )

    async def bounded(self, method: str, call: Awaitable[R], context: Any) -> R:
        """The call's result, or DeadlineExceeded when its client deadline passes first, or
        StoreUnavailable when Redis keeps a bounded call waiting past redis_timeout_seconds."""
        remaining = context.time_remaining()
        limit = self.redis_timeout if method in BOUNDED else None
        if remaining is None and limit is None:
            return await call
        budget = min(x for x in (remaining, limit) if x is not None)
        try:
            return await asyncio.wait_for(call, budget)
        except TimeoutError:
            if limit is None or (remaining is not None and remaining <= limit):
                raise DeadlineExceeded(
                    f"{method}: no answer from Redis within the call's deadline ({budget:.2f} s)"
                ) from None
            raise StoreUnavailable(
                f"{method}: Redis did not answer within {limit:.1f} s (redis_timeout_seconds)"
            ) from None

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
        return await self.service.record_events(request, caller(context))

    @grpc_errors
    async def StreamEvents(
        self, request_iterator: AsyncIterator[pb.Event], context: grpc.aio.ServicerContext
    ) -> pb.RecordEventsResponse:
        return await self.service.stream_events(request_iterator, caller(context))

    @grpc_errors
    async def StreamEventBatches(
        self,
        request_iterator: AsyncIterator[pb.RecordEventsRequest],
        context: grpc.aio.ServicerContext,
    ) -> pb.RecordEventsResponse:
        return await self.service.stream_event_batches(request_iterator, caller(context))

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

    @grpc_errors
    async def PinArticle(
        self, request: pb.PinArticleRequest, context: grpc.aio.ServicerContext
    ) -> pb.RuleResponse:
        return await self.service.rules.pin(request, CALLER.get())

    @grpc_errors
    async def BlockArticle(
        self, request: pb.BlockArticleRequest, context: grpc.aio.ServicerContext
    ) -> pb.RuleResponse:
        return await self.service.rules.block(request, CALLER.get())

    @grpc_errors
    async def ListRules(
        self, request: pb.ListRulesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRulesResponse:
        return await self.service.rules.list()

    @grpc_errors
    async def RemoveRule(
        self, request: pb.RemoveRuleRequest, context: grpc.aio.ServicerContext
    ) -> pb.RemoveRuleResponse:
        return await self.service.rules.remove(request)
