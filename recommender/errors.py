"""Typed domain errors, and the one table that maps them to gRPC status codes."""

from __future__ import annotations

import grpc
import redis


class NewsrecError(Exception):
    """Base of the errors a request can end in."""


class InvalidRequest(NewsrecError):
    """A field of the request is malformed or out of range; the message names the field."""


class ArticleNotFound(NewsrecError):
    """The article is not in the live model."""


class RuleNotFound(NewsrecError):
    """RemoveRule named a rule id that no stored rule has."""


class NotExplained(NewsrecError):
    """explain=true on a model trained without explanation records."""


class NoModelPublished(NewsrecError):
    """Nothing has been published to this Redis namespace yet."""


class CannotScoreUpserts(NewsrecError):
    """This replica lacks what the live model needs to place new articles (the embedding model
    or its runtime): an operator must install it, or route writes to a replica that has it."""


class WrongRole(NewsrecError):
    """The call is outside this replica's role (NEWSREC_ROLE): the router sent it to the wrong
    replica; another one answers it."""


class StoreUnavailable(NewsrecError):
    """Redis cannot be reached (or is a read-only replica, or still loading) and no cached answer
    exists: the caller may retry, here or on another replica."""


class StoreFull(NewsrecError):
    """Redis is out of memory (maxmemory reached): nothing of the write happened."""


class Unauthenticated(NewsrecError):
    """The call needs a token and brought none, or a wrong one."""


class DeadlineExceeded(NewsrecError):
    """Redis did not answer within the call's deadline."""


STATUS_CODES: dict[type[NewsrecError], grpc.StatusCode] = {
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    ArticleNotFound: grpc.StatusCode.NOT_FOUND,
    RuleNotFound: grpc.StatusCode.NOT_FOUND,
    NoModelPublished: grpc.StatusCode.FAILED_PRECONDITION,
    CannotScoreUpserts: grpc.StatusCode.FAILED_PRECONDITION,
    NotExplained: grpc.StatusCode.FAILED_PRECONDITION,
    WrongRole: grpc.StatusCode.FAILED_PRECONDITION,
    StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
    StoreFull: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def status_code(error: NewsrecError) -> grpc.StatusCode:
    """The gRPC status for a domain error (INTERNAL for a subclass nobody mapped)."""
    for kind, code in STATUS_CODES.items():
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


def store_error(exc: Exception) -> NewsrecError:
    """The domain error for a Redis failure: out of memory is RESOURCE_EXHAUSTED (nothing was
    written), everything else UNAVAILABLE (unreachable, a read-only replica, loading, a failed
    script), each with Redis's own reason."""
    reason = str(exc).strip() or type(exc).__name__
    out_of_memory = isinstance(exc, redis.exceptions.OutOfMemoryError) or reason.startswith(
        ("OOM", "EXECABORT Transaction discarded because of: OOM")
    )
    if out_of_memory or "OOM command not allowed" in reason:
        return StoreFull(f"Redis is out of memory; nothing was written: {reason}")
    if reason.startswith("READONLY") or "read only replica" in reason:
        # A pipeline's or a script's error quotes the command (a whole Lua script): not useful.
        return StoreUnavailable(
            "Redis is a read-only replica; nothing was written (point writers at the primary)"
        )
    return StoreUnavailable(f"Redis unavailable: {reason}")
