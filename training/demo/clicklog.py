"""The demo click log as JSON lines, encoded a batch of events at a time with numpy (a
million events in about a second): every row has the same fixed-width template."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from functools import cache

import numpy as np

HOUR = 3600
DAY = 86_400
_LOW32 = np.uint64(0xFFFF_FFFF)


@cache
def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ASCII lookup tables: 4 decimal digits, HH:MM:SS of a second of day, 2 hex digits."""
    d4 = "".join(f"{i:04d}" for i in range(10_000)).encode("ascii")
    hms = "".join(f"{s // HOUR:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY))
    hex2 = "".join(f"{i:02x}" for i in range(256)).encode("ascii")
    return (np.frombuffer(d4, "<u4"), np.frombuffer(hms.encode("ascii"), "<u8"),
            np.frombuffer(hex2, "<u2"))  # fmt: skip


def runs(values: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """Yield (value, start, stop) of each run of equal values of a sorted array."""
    cuts = [0, *(np.flatnonzero(np.diff(values)) + 1).tolist(), values.size] if values.size else []
    yield from ((int(values[lo]), lo, hi) for lo, hi in itertools.pairwise(cuts))


class ClickLogEncoder:
    """Packed events (second << 32 | article, session << 1 | click) to JSON lines."""

    def __init__(self, width: int, start: int) -> None:
        self.width, self.start = width, start
        row = (f'{{"article_id":"demo-{"0" * width}","ts":"YYYY-MM-DDThh:mm:ssZ",'
               f'"type":"impression","session_id":"s-{"0" * 10}"}}\n')  # fmt: skip
        self.row = np.frombuffer(row.encode("ascii"), np.uint8)
        marks = ('"demo-', '"YYYY', "Thh", '"impression', '"s-')  # each after one char
        self.at = {k: row.index(v) + 1 for k, v in zip("idtys", marks, strict=True)}

    def encode(self, when: np.ndarray, sess: np.ndarray) -> memoryview:
        """Return the JSON lines of time-sorted packed events (fixed width but for the type)."""
        d4, hms, hex2 = _tables()
        n, at, width = when.size, self.at, self.width
        rows = np.empty((n, self.row.size), np.uint8)
        rows[:] = self.row
        groups = -(-width // 4)
        digits = np.empty((n, groups), "<u4")
        x = (when & _LOW32).astype(np.int64) + 1
        for g in range(groups - 1, -1, -1):
            x, digits[:, g] = x // 10_000, d4[x % 10_000]
        rows[:, at["i"] + 5 : at["i"] + 5 + width] = digits.view(np.uint8)[:, -width:]
        ts = (when >> np.uint64(32)).astype(np.int64) + self.start
        day = ts // DAY
        for d, lo, hi in runs(day):
            stamp = np.datetime_as_string(np.datetime64(d, "D")).encode("ascii")
            rows[lo:hi, at["d"] : at["d"] + 10] = np.frombuffer(stamp, np.uint8)
        rows[:, at["t"] : at["t"] + 8] = hms[ts - day * DAY].view(np.uint8).reshape(n, 8)
        sess_bytes = (sess >> np.uint64(1)).astype("<u8").view(np.uint8).reshape(n, 8)[:, 4::-1]
        rows[:, at["s"] + 2 : at["s"] + 12] = hex2[sess_bytes].view(np.uint8).reshape(n, 10)
        click = np.flatnonzero(sess & np.uint64(1))
        rows[click, at["y"] : at["y"] + 6] = np.frombuffer(b'click"', np.uint8)
        keep = np.ones(rows.size, bool)  # drop the rest of "impression" from click rows
        keep[((click * rows.shape[1] + at["y"] + 6)[:, None] + np.arange(5)).ravel()] = False
        return rows.reshape(-1)[keep].data
