"""The training lock: one `newsrec train`, `publish` or `rollback` at a time per namespace.

A redis-py Lock (SET NX PX, and token-checked Lua scripts to renew and release) whose token is
a JSON description of the holder (host, pid, command, start), so a refused run can say who holds
it. The lease is short (lock_lease_seconds) and a daemon thread renews it every third of it: a
killed run's lock expires by itself, a live run's never does. The pointer flip checks the lock
in the same transaction (flip_pointer), so a run whose lease lapsed never publishes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from types import TracebackType

import redis
from redis.exceptions import LockError, LockNotOwnedError, WatchError
from redis.lock import Lock

from recommender.store.keys import Keys


class LockHeld(ValueError):
    """Another run holds the namespace's lock; the message names it and the way to wait."""


class LockLost(ValueError):
    """This run's lease lapsed (the process stalled longer than the lease): it must not publish."""


def holder_token(command: str) -> str:
    """Who holds the lock: shown to a run that finds it taken; unique per acquisition."""
    started = datetime.now(tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return json.dumps({"command": command, "host": socket.gethostname(), "pid": os.getpid(),
                       "started": started, "id": uuid.uuid4().hex})  # fmt: skip


def describe(raw: bytes | str | None, ttl_ms: int) -> str:
    """A holder token as a sentence (anything unparsable is shown as it is)."""
    if raw is None:
        return "nobody (it was just released)"
    try:
        who = json.loads(raw)
        text = (f"`newsrec {who['command']}` on host {who['host']}, pid {who['pid']}, "
                f"since {who['started']}")  # fmt: skip
    except (ValueError, KeyError, TypeError):
        text = repr(raw)
    lease = f"; its lease ends in {ttl_ms / 1000:.0f} s unless renewed" if ttl_ms > 0 else ""
    return text + lease


class RunLock:
    """Hold the namespace's lock for a `with` block, renewing the lease in a daemon thread.

    wait: None stops at once when the lock is taken (LockHeld); a number of seconds waits up to
    that long; math.inf waits as long as it takes.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        command: str,
        lease_seconds: float = 120.0,
        wait: float | None = None,
    ) -> None:
        self.client, self.keys, self.command = client, keys, command
        self.lease, self.wait = lease_seconds, wait
        self.lock = Lock(client, keys.lock, timeout=lease_seconds, sleep=0.2, thread_local=False)
        self.holder = holder_token(command)
        self.token = self.holder.encode()
        """The lock key's value while this run holds it."""
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RunLock:
        blocking = self.wait is not None
        timeout = None if self.wait is None or math.isinf(self.wait) else self.wait
        if not self.lock.acquire(blocking=blocking, blocking_timeout=timeout, token=self.holder):
            raise LockHeld(self._refusal())
        self._thread = threading.Thread(target=self._renew, name="newsrec-lock", daemon=True)
        self._thread.start()
        return self

    def _refusal(self) -> str:
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self.keys.lock)
        pipe.pttl(self.keys.lock)
        raw, ttl = pipe.execute()
        waited = "" if self.wait is None else f" (waited {self.wait:g} s)"
        return (
            f"another run holds the lock of namespace {self.keys.namespace!r}{waited}: "
            f"{describe(raw, int(ttl))}. Rerun with --wait-for-lock [SECONDS] to wait for it; "
            "a killed run's lock expires by itself when its lease ends."
        )

    def _renew(self) -> None:
        """Reset the lease to its full length every third of it, until released or lost."""
        while not self._stop.wait(self.lease / 3):
            try:
                self.lock.reacquire()
            except LockNotOwnedError:  # the lease lapsed and the key expired or changed hands
                self.lost.set()
                return
            except (LockError, redis.RedisError):
                continue  # Redis briefly unreachable: try again at the next tick

    def owned(self) -> bool:
        """Redis still holds this run's token under the lock key."""
        try:
            return bool(self.client.get(self.keys.lock) == self.token)
        except redis.RedisError:
            return False

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        # A Lua script: deletes the key only if it still holds our token (else: nothing ours).
        with contextlib.suppress(LockError, redis.RedisError):
            self.lock.release()


def flip_pointer(
    client: redis.Redis, keys: Keys, version: str, lock: RunLock | None, new: bool = False
) -> None:
    """SET the live pointer in one transaction with a check that `lock` is still ours (WATCH on
    the lock key), so a run whose lease lapsed cannot overwrite another run's version. With
    `new`, the same transaction moves the version from pending to published: a version is
    never live and pending at once (leftover cleanup deletes pending versions). On a cluster the
    four keys share one slot (store/keys.py), which a cluster transaction needs."""
    try:
        with client.pipeline(transaction=True) as pipe:
            if lock is not None:
                pipe.watch(keys.lock)
                if pipe.get(keys.lock) != lock.token:
                    raise LockLost(
                        f"lost the lock of namespace {keys.namespace!r} (its lease lapsed) "
                        "before the pointer flip; nothing was made live"
                    )
            pipe.multi()
            if new:
                pipe.zadd(keys.versions, {version: time.time()})
                pipe.zrem(keys.pending, version)
            pipe.set(keys.pointer, version)
            pipe.execute()
    except WatchError:
        message = f"the lock of namespace {keys.namespace!r} changed during the flip"
        raise LockLost(message) from None


def add_lock_flag(parser: argparse.ArgumentParser) -> None:
    """--wait-for-lock [SECONDS], for the commands that take the lock."""
    parser.add_argument("--wait-for-lock", nargs="?", const="inf", metavar="SECONDS",
                        help="if another run holds the namespace's lock, wait for it (up to "
                        "SECONDS; no value: as long as it takes) instead of stopping")  # fmt: skip


def wait_flag(value: str | None) -> float | None:
    """--wait-for-lock [SECONDS]: None (not given), math.inf (no limit) or the seconds."""
    if value is None:
        return None
    seconds = float(value)
    if not seconds > 0:
        raise ValueError("--wait-for-lock takes a number of seconds > 0 (or none: no limit)")
    return seconds
