"""One settings object for every entry point: defaults < TOML file < NEWSREC_* env vars < flags.

Parsed once at the entry point and passed down; no other module reads os.environ.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ENV_PREFIX = "NEWSREC_"
CONFIG_ENV = "NEWSREC_CONFIG"
ROLES = ("all", "reader", "writer")


class ConfigError(ValueError):
    """A setting could not be parsed; the message names the setting and its source."""


@dataclass(frozen=True)
class Settings:
    """Every runtime setting, with its default."""

    redis_url: str = ""
    """Redis to use, e.g. redis://host:6379/0. Empty: start an embedded Redis under data_dir."""
    redis_cluster: bool = False
    """redis_url names a node of a Redis Cluster: use redis-py's cluster client (every process:
    server, training, commands). Needs a redis:// or rediss:// URL (not the embedded Redis)."""
    namespace: str = "newsrec"
    """Prefix of every Redis key, so several deployments can share one Redis."""
    data_dir: Path = Path(".newsrec")
    """Where the embedded Redis keeps its data and socket."""
    model_dir: Path = Path(".newsrec/models")
    """Where training writes model/<version>/ folders."""
    embedding_store: Path = Path(".newsrec/embeddings")
    """Where training keeps article embeddings between runs (encode each article once)."""
    dask_scheduler: str = ""
    """A dask.distributed scheduler (tcp://host:port) that runs training's heavy stages
    (vectorising, neighbour searches); empty: local processes and threads. Needs the dask
    extra (pip install 'newsrec[dask]'); serving never reads it."""
    host: str = "127.0.0.1"
    """Address the gRPC server binds ("0.0.0.0" or "[::]" to serve other hosts)."""
    port: int = 50051
    """gRPC port; 0 picks a free one."""
    column_map: str = ""
    """Columns of your exports that the recognised names miss, as FIELD=COLUMN pairs
    (`title=headline_text,ts=event_time`); `--map` adds to it (docs/own-data.md)."""
    keep_versions: int = 3
    """Published versions kept in Redis for rollback."""
    publish_batch: int = 1000
    """Keys written per Redis round trip while publishing."""
    lock_lease_seconds: float = 120.0
    """Lease of the training lock (train, publish, rollback): the holder renews it every third
    of it, so a killed run's lock expires by itself within this long."""
    gate_min_matched_share: float = 0.01
    """Training refuses a click log unless this share of its events, or of its distinct article
    ids, are articles of the export (MIND sample: 2.8% and 3.8%; another site's log: 0%)."""
    gate_min_matched_events: int = 100
    """... and unless at least this many of its events match (all of them, in a shorter log)."""
    gate_min_article_ratio: float = 0.5
    """Training refuses a model with fewer articles than this share of the live model's."""
    gate_min_related_share: float = 0.1
    """Training refuses a model where fewer than this share of articles have a related list
    whose best item scores above 0.01 (and always one where none has; MIND, BBC, demo: 100%)."""
    pointer_cache_seconds: float = 1.0
    """How long a server trusts its cached copy of the live-version pointer."""
    cache_entries: int = 50_000
    """In-process cache of immutable versioned lists and article records."""
    answer_cache_entries: int = 20_000
    """In-process cache of whole answers, keyed by request, version and live-state epoch."""
    last_good_entries: int = 10_000
    """Answers kept to serve the same request while Redis is unreachable."""
    sections_cache_entries: int = 200_000
    """Known articles whose sections the event path keeps (cleared when full, refilled on use)."""
    live_cache_seconds: float = 1.0
    """How long a server reuses live Popular counts before reading them again."""
    event_stream_max_batches: int = 1_000_000
    """Cap of the accepted-events stream, in batches (RecordEvents calls, StreamEventBatches
    messages, or 1,000 StreamEvents events)."""
    batch_id_ttl_seconds: int = 24 * 3600
    """How long a RecordEvents batch_id's reply is kept: a retry with the same batch_id within
    this time gets that reply and counts nothing again. Each kept reply costs Redis about 200
    bytes (more with rejected events)."""
    role: str = "all"
    """What this server answers: "reader" (Related, Popular, model info, events: never loads
    the corpus vectors, so its memory stays within its caches), "writer" (upserts, takedowns,
    events, model info: it holds the vectors that place new articles) or "all" (both). A call
    outside the role is FAILED_PRECONDITION naming the role; route it to another replica."""
    writer_dir: str = ".newsrec/writer"
    """Where a writer keeps the live version's compact vectors as files it maps read-only
    (GBs at a million articles): the page cache shares them between the writer processes of
    one machine and can reclaim them under pressure. Empty: in the process's own memory."""
    upsert_max_articles: int = 100
    """Articles an UpsertArticles call may carry."""
    upsert_max_bytes: int = 16 * 1024 * 1024
    """Serialized size an UpsertArticles call may have (INVALID_ARGUMENT above it: send fewer
    articles a call). The gRPC receive limit is raised to at least this."""
    max_title_chars: int = 1_000
    """Characters of an upserted article's title."""
    max_body_chars: int = 200_000
    """Characters of an upserted article's body."""
    max_url_chars: int = 2_048
    """Characters of an upserted article's url."""
    grpc_max_receive_bytes: int = 32 * 1024 * 1024
    """gRPC's receive limit for any request message (the server uses the larger of this and
    upsert_max_bytes); gRPC itself answers RESOURCE_EXHAUSTED above it, before newsrec reads
    the message."""
    shutdown_grace_seconds: float = 10.0
    """In-flight calls get this long to finish on SIGTERM/SIGINT."""
    redis_timeout_seconds: float = 2.0
    """A serving call waits on Redis at most this long (or until its gRPC deadline, if sooner):
    then DEADLINE_EXCEEDED or UNAVAILABLE, never a hang."""
    redis_grace_seconds: float = 3.0
    """Redis unreachable this long turns the health status NOT_SERVING (cached answers go on)."""
    redis_tls_ca: str = ""
    """CA file that signed the Redis server's certificate (rediss:// URLs)."""
    redis_tls_cert: str = ""
    """Client certificate for Redis servers that require one (with redis_tls_key)."""
    redis_tls_key: str = ""
    write_token: str = field(default="", repr=False)
    """Tokens that write RPCs need (events, upserts, takedowns): comma-separated, each `secret`
    or `name=secret` (the name goes to the audit log; several allow rotation). Empty: open."""
    read_token: str = field(default="", repr=False)
    """Tokens that read RPCs need, as write_token (a write token reads too). Empty: reads open."""
    tls_cert: str = ""
    """Server certificate (PEM) for gRPC over TLS; with tls_key. Empty: plaintext."""
    tls_key: str = ""
    tls_client_ca: str = ""
    """CA file of client certificates: set, every client must present one it signed (mTLS)."""
    metrics_port: int = 0
    """Port of the Prometheus /metrics endpoint of this process; 0 = off."""
    log_format: str = "text"
    """"text" or "json" (one JSON object a line)."""
    access_log: bool = False
    """One log line per call (method, status, milliseconds, caller); also on at log_level DEBUG."""
    log_level: str = "INFO"


def _parse(name: str, kind: Any, value: object, source: str) -> object:
    """Convert one raw value (TOML or env string) to the field's type."""
    try:
        if kind in (int, "int"):
            if isinstance(value, bool):
                raise ValueError("booleans are not numbers")
            return int(value)  # type: ignore[call-overload]
        if kind in (float, "float"):
            return float(value)  # type: ignore[arg-type]
        if kind in (bool, "bool"):
            return _boolean(value)
        if kind in (Path, "Path"):
            return Path(str(value))
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: setting {name!r} got {shown(name, value)}: {exc}") from None


SECRETS = ("write_token", "read_token")


def shown(name: str, value: object) -> str:
    """A setting's value as logs and errors may show it: tokens hidden, URL passwords masked."""
    if name in SECRETS:
        return "'***'" if value else "''"
    if name == "redis_url":
        return repr(mask_url(str(value)))
    return repr(value)


def mask_url(url: str) -> str:
    """The URL with its password (and an ACL user's password) replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}***@{host}"))


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


_FIELDS = {f.name: f.type for f in fields(Settings)}


def _apply(base: Settings, values: Mapping[str, object], source: str) -> Settings:
    """Return base with values (already keyed by field name) applied; unknown names are errors."""
    changes: dict[str, object] = {}
    for name, raw in values.items():
        if name not in _FIELDS:
            known = ", ".join(sorted(_FIELDS))
            raise ConfigError(f"{source}: unknown setting {name!r} (known: {known})")
        changes[name] = _parse(name, _FIELDS[name], raw, source)
    settings = replace(base, **changes)  # type: ignore[arg-type]
    _check(settings, source)
    return settings


def _check(settings: Settings, source: str) -> None:
    """Reject values that parse but make no sense."""
    if not 0 <= settings.port <= 65535:
        raise ConfigError(f"{source}: port must be 0-65535, got {settings.port}")
    if settings.keep_versions < 1:
        raise ConfigError(f"{source}: keep_versions must be at least 1")
    if settings.publish_batch < 1:
        raise ConfigError(f"{source}: publish_batch must be at least 1")
    if settings.lock_lease_seconds < 1:
        raise ConfigError(f"{source}: lock_lease_seconds must be at least 1")
    shares = ("gate_min_matched_share", "gate_min_article_ratio", "gate_min_related_share")
    for name in shares:
        if not 0 <= getattr(settings, name) <= 1:
            raise ConfigError(f"{source}: {name} must be between 0 and 1")
    if settings.gate_min_matched_events < 0:
        raise ConfigError(f"{source}: gate_min_matched_events must be >= 0")
    if settings.redis_timeout_seconds <= 0 or settings.redis_grace_seconds < 0:
        raise ConfigError(f"{source}: redis_timeout_seconds must be > 0, redis_grace_seconds >= 0")
    if any(c.isspace() for c in settings.dask_scheduler):
        raise ConfigError(f"{source}: dask_scheduler {settings.dask_scheduler!r} has spaces")
    if settings.role not in ROLES:
        raise ConfigError(
            f"{source}: role must be one of {', '.join(ROLES)}, got {settings.role!r}"
        )
    if settings.log_format not in ("text", "json"):
        raise ConfigError(f"{source}: log_format must be text or json, got {settings.log_format!r}")
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise ConfigError(f"{source}: tls_cert and tls_key go together (both or neither)")
    if settings.tls_client_ca and not settings.tls_cert:
        raise ConfigError(f"{source}: tls_client_ca needs tls_cert and tls_key")
    if not 0 <= settings.metrics_port <= 65535:
        raise ConfigError(f"{source}: metrics_port must be 0-65535, got {settings.metrics_port}")
    if not settings.namespace or any(c in settings.namespace for c in " {}*?[]"):
        raise ConfigError(
            f"{source}: namespace {settings.namespace!r} must be non-empty "
            "without spaces, braces or glob characters"
        )


def load_settings(
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Settings:
    """Build Settings from defaults, a TOML file, NEWSREC_* env vars and flag overrides, in order.

    The TOML file is `config_file`, else $NEWSREC_CONFIG; keys sit at the top level or under
    [newsrec]. Flag overrides whose value is None are ignored (flag not given).
    """
    env = os.environ if env is None else env
    settings = Settings()
    path = config_file or (Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else None)
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        table = data.get("newsrec", data)
        settings = _apply(settings, table, f"config file {path}")
    from_env = {
        key[len(ENV_PREFIX) :].lower(): value
        for key, value in env.items()
        if key.startswith(ENV_PREFIX)
        and key != CONFIG_ENV
        and key[len(ENV_PREFIX) :].lower() in _FIELDS
    }
    settings = _apply(settings, from_env, "environment")
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    return _apply(settings, flags, "command line")


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """The flags every command that talks to Redis takes."""
    parser.add_argument("--config", type=Path, help="TOML settings file (or $NEWSREC_CONFIG)")
    parser.add_argument("--redis-url", help="Redis URL (default $NEWSREC_REDIS_URL, else embedded)")
    parser.add_argument("--namespace", help="Redis key prefix (default newsrec)")


def settings_from_args(args: argparse.Namespace, **extra: object) -> Settings:
    """Settings layered from defaults, TOML, env and this command's flags."""
    flags = {
        "redis_url": getattr(args, "redis_url", None),
        "namespace": getattr(args, "namespace", None),
        "model_dir": getattr(args, "model_dir", None),
        **extra,
    }
    return load_settings(getattr(args, "config", None), overrides=flags)
