"""What every call goes through before and after the servicer: request bytes that do not parse
(INVALID_ARGUMENT, no traceback), the tokens of write and read calls (UNAUTHENTICATED), the
metrics, the access log and the audit log of writes. One grpc.aio server interceptor.
"""

from __future__ import annotations

import contextvars
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from recommender import metrics
from recommender.errors import InvalidRequest

log = logging.getLogger("newsrec.server")
access = logging.getLogger("newsrec.access")
audit = logging.getLogger("newsrec.audit")

RULE_METHODS = frozenset({"PinArticle", "BlockArticle", "ListRules", "RemoveRule"})
WRITES = frozenset(
    {"RecordEvents", "StreamEvents", "StreamEventBatches", "UpsertArticles", "DeleteArticle",
     *RULE_METHODS}
)  # fmt: skip
"""Methods that change what replicas serve (and ListRules, an editors' call): they need a write
token when tokens are set."""
AUDITED = frozenset({"UpsertArticles", "DeleteArticle", "PinArticle", "BlockArticle", "RemoveRule"})
"""Writes logged one line each at INFO (events are too many: the access log has them)."""
MALFORMED_LOG_SECONDS = 10.0
CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("newsrec_caller", default="")
"""Who makes the current call: `token:<name>` when tokens are set, else `peer:<address>`."""


@dataclass(frozen=True)
class Malformed:
    """A request whose bytes did not parse (what the deserializer returns instead of raising)."""

    message_type: str
    reason: str


def parse_tokens(value: str) -> dict[str, str]:
    """Token secret -> name from `secret` or `name=secret` entries, comma-separated."""
    tokens: dict[str, str] = {}
    for n, entry in enumerate(e.strip() for e in value.split(",") if e.strip()):
        name, sep, secret = entry.partition("=")
        tokens[secret if sep else name] = name if sep else f"token{n + 1}"
    return tokens


def bearer(metadata: Any) -> str:
    """The token of an `authorization: Bearer <token>` header ('' when absent)."""
    for key, value in metadata or ():
        if key.lower() == "authorization" and isinstance(value, str):
            scheme, _, token = value.strip().partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


def token_name(presented: str, tokens: dict[str, str]) -> str | None:
    """The name of the matching token, comparing every one in constant time (None: no match)."""
    found = None
    for secret, name in tokens.items():
        if hmac.compare_digest(presented.encode(), secret.encode()):
            found = name
    return found


def peer_address(peer: str) -> str:
    """'ipv4:10.0.0.7:51234' -> '10.0.0.7' (the caller's host, without its port)."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        host = rest.rsplit(":", 1)[0]
        return host.strip("[]")
    return peer or "unknown"


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every method handler of the server (see the module doc)."""

    def __init__(self, write_tokens: str = "", read_tokens: str = "", access_log: bool = False):
        self.writers = parse_tokens(write_tokens)
        readers = parse_tokens(read_tokens)
        self.readers = {**readers, **self.writers} if readers else {}  # a write token reads too
        self.access_log = access_log
        self._malformed_logged = -MALFORMED_LOG_SECONDS

    async def intercept_service(
        self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails
    ) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method.rsplit("/", 1)[-1]
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap(method, details, handler.unary_unary, streaming=False),
                request_deserializer=_safe(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap(method, details, handler.stream_unary, streaming=True),
                request_deserializer=_safe(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler  # server-streaming methods (health Watch, reflection) pass as they are

    def _caller(self, method: str, details: Any, context: Any) -> str:
        """The caller's identity: its token's name where tokens are set, else its address;
        PermissionError when the call needs a token it did not bring."""
        CALLER.set(f"peer:{peer_address(context.peer())}")
        tokens = self.writers if method in WRITES else self.readers
        if not tokens or not details.method.startswith("/recommender."):
            return CALLER.get()
        name = token_name(bearer(details.invocation_metadata), tokens)
        if name is None:
            kind = "write" if method in WRITES else "read"
            raise PermissionError(f"{method} needs a {kind} token: metadata authorization: "
                                  "Bearer <token> (missing or not valid)")  # fmt: skip
        return f"token:{name}"

    def _wrap(
        self, method: str, details: Any, inner: Callable[..., Any], streaming: bool
    ) -> Callable[..., Any]:
        """The handler's behavior inside the checks, metrics and logs."""

        async def behavior(request: Any, context: Any) -> Any:
            started = time.perf_counter()
            try:
                CALLER.set(self._caller(method, details, context))
                if streaming:
                    request = self._checked(method, request)
                elif isinstance(request, Malformed):
                    self._log_malformed(method, request)
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _malformed(request))
                response = await inner(request, context)
                self._observe(method, response)
                return response
            except PermissionError as exc:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
            finally:
                self._finish(method, context, started, None if streaming else request)

        return behavior

    async def _checked(self, method: str, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """The stream's messages; a message that does not parse ends it with INVALID_ARGUMENT."""
        async for message in requests:
            if isinstance(message, Malformed):
                self._log_malformed(method, message)
                raise InvalidRequest(_malformed(message))
            yield message

    def _log_malformed(self, method: str, request: Malformed) -> None:
        now = time.monotonic()
        if now - self._malformed_logged >= MALFORMED_LOG_SECONDS:  # rate-limited, no traceback
            self._malformed_logged = now
            log.warning("%s: %s (logged at most every %.0f s)", method, _malformed(request),
                        MALFORMED_LOG_SECONDS)  # fmt: skip

    def _observe(self, method: str, response: Any) -> None:
        """Metrics that only the answer tells: events by outcome, upserts, takedowns."""
        if method in ("RecordEvents", "StreamEvents", "StreamEventBatches"):
            metrics.EVENTS.labels("accepted", "").inc(response.accepted)
            metrics.EVENTS.labels("deduplicated", "").inc(response.deduplicated)
            for reason, count in response.rejected_reasons.items():
                metrics.EVENTS.labels("rejected", reason).inc(count)
        elif method == "UpsertArticles":
            metrics.UPSERTS.inc(len(response.results))
        elif method == "DeleteArticle":
            metrics.TAKEDOWNS.inc()

    def _finish(self, method: str, context: Any, started: float, request: Any) -> None:
        """Count the call, time it, and log it (access log; audit line for audited writes)."""
        seconds = time.perf_counter() - started
        code = context.code() or grpc.StatusCode.OK
        name = code.name if isinstance(code, grpc.StatusCode) else str(code)
        metrics.REQUESTS.labels(method, name).inc()
        metrics.LATENCY.labels(method).observe(seconds)
        caller = CALLER.get()
        if method in AUDITED and request is not None and not isinstance(request, Malformed):
            audit.info("%s %s by %s: %s", method, _subject(method, request), caller, name)
        if self.access_log or access.isEnabledFor(logging.DEBUG):
            access.log(logging.INFO if self.access_log else logging.DEBUG,
                       "%s %s %.1f ms %s", method, name, seconds * 1000, caller)  # fmt: skip


def _subject(method: str, request: Any) -> str:
    """What an audited write touched: the article ids."""
    if method == "UpsertArticles":
        return "articles " + ",".join(a.article_id[:128] for a in request.articles)
    if method == "RemoveRule":
        return f"rule {request.rule_id[:64]!r}"
    if method == "BlockArticle":
        target = request.WhichOneof("target") or "nothing"
        return f"{target} {str(getattr(request, target, ''))[:128]!r}"
    return f"article {request.article_id[:128]!r}"


def _malformed(request: Malformed) -> str:
    return f"the request bytes do not parse as {request.message_type}: {request.reason}"


def _safe(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """A deserializer that returns Malformed instead of raising (grpc would log a traceback
    and answer UNKNOWN)."""
    if deserialize is None:
        return None
    message_type = getattr(getattr(deserialize, "__self__", None), "__name__", "the request")

    def parse(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except Exception as exc:  # DecodeError and friends: the caller's bytes, not our bug
            return Malformed(message_type, str(exc) or type(exc).__name__)

    return parse
