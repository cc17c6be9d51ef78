"""Prometheus metrics of a serving process (prometheus-client), on /metrics of metrics_port.

Every process serves its own port: run one server process per container (or give each
process its own NEWSREC_METRICS_PORT) and scrape each; counters are per process.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry()
"""This process's metrics (a registry of its own: nothing global is exported by accident)."""

REQUESTS = Counter(
    "newsrec_requests", "Calls answered, by RPC and status code", ["method", "code"],
    registry=REGISTRY,
)  # fmt: skip
LATENCY = Histogram(
    "newsrec_request_seconds", "Time to answer a call, by RPC", ["method"], registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)  # fmt: skip
REDIS_ROUND_TRIPS = Counter(
    "newsrec_redis_round_trips", "Redis round trips (a pipeline is one)", registry=REGISTRY
)
REDIS_ERRORS = Counter(
    "newsrec_redis_errors", "Redis calls that failed, by kind", ["kind"], registry=REGISTRY
)
ANSWER_CACHE = Counter(
    "newsrec_answer_cache", "Answer cache lookups, by result (hit, miss)", ["result"],
    registry=REGISTRY,
)  # fmt: skip
LAST_GOOD = Counter(
    "newsrec_last_good_answers", "Calls answered from the last good answer while Redis failed",
    registry=REGISTRY,
)  # fmt: skip
EVENTS = Counter(
    "newsrec_events", "Reader events, by outcome (accepted, deduplicated, rejected) and reason",
    ["outcome", "reason"], registry=REGISTRY,
)  # fmt: skip
UPSERTS = Counter("newsrec_upserts", "Articles upserted", registry=REGISTRY)
UPSERT_STAGES = Histogram(
    "newsrec_upsert_stage_seconds",
    "Time of each stage of placing one upserted article: vectorize (TF-IDF and LSA rows), "
    "encode (its embedding, while score_words runs: TF-IDF scores), score (the rest: "
    "candidates, embeddings, the blend), write (its records and list entries)",
    ["stage"], registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)  # fmt: skip
TAKEDOWNS = Counter("newsrec_takedowns", "Articles taken down", registry=REGISTRY)
UNKNOWN_SECTIONS = Counter(
    "newsrec_unknown_sections", "GetPopular/GetRelated calls naming a section the model lacks",
    registry=REGISTRY,
)  # fmt: skip
MODEL_VERSION = Gauge(
    "newsrec_model_version", "1 for the live model version this process serves", ["version"],
    registry=REGISTRY,
)  # fmt: skip
MODEL_TRAINED_AT = Gauge(
    "newsrec_model_trained_at_seconds", "When the live model was trained (epoch seconds)",
    registry=REGISTRY,
)  # fmt: skip
MODEL_AGE = Gauge(
    "newsrec_model_age_seconds", "Seconds since the live model was trained", registry=REGISTRY
)
_trained_at = [0.0]
MODEL_AGE.set_function(lambda: time.time() - _trained_at[0] if _trained_at[0] else 0.0)
HEALTH = Gauge("newsrec_serving", "1 while the health status is SERVING, else 0", registry=REGISTRY)
REDIS_UP = Gauge("newsrec_redis_up", "1 while Redis answers, else 0", registry=REGISTRY)
MODEL_LOST = Gauge(
    "newsrec_model_lost", "1 while Redis no longer holds the live model (restarted empty?)",
    registry=REGISTRY,
)  # fmt: skip


def serve_metrics(port: int, host: str = "0.0.0.0") -> None:
    """Start the /metrics endpoint (a daemon thread); a port in use is a clear OSError."""
    try:
        start_http_server(port, addr=host, registry=REGISTRY)
    except OSError as exc:
        raise OSError(f"cannot serve metrics on port {port}: {exc.strerror or exc}") from None


def live_model(version: str, trained_at: float) -> None:
    """Point the model gauges at the version being served."""
    MODEL_VERSION.clear()
    MODEL_VERSION.labels(version).set(1)
    MODEL_TRAINED_AT.set(trained_at)
    _trained_at[0] = trained_at
