"""Typed domain errors, and the one table that maps them to gRPC status codes."""

from __future__ import annotations

import grpc


class NewsrecError(Exception):
    """Base of the errors a request can end in."""


class InvalidRequest(NewsrecError):
    """A field of the request is malformed or out of range; the message names the field."""


class ArticleNotFound(NewsrecError):
    """The article is not in the live model."""


class NoModelPublished(NewsrecError):
    """Nothing has been published to this Redis namespace yet."""


class StoreUnavailable(NewsrecError):
    """Redis cannot be reached and no cached answer exists."""


STATUS_CODES: dict[type[NewsrecError], grpc.StatusCode] = {
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    ArticleNotFound: grpc.StatusCode.NOT_FOUND,
    NoModelPublished: grpc.StatusCode.FAILED_PRECONDITION,
    StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_code(error: NewsrecError) -> grpc.StatusCode:
    """The gRPC status for a domain error (INTERNAL for a subclass nobody mapped)."""
    for kind, code in STATUS_CODES.items():
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL
