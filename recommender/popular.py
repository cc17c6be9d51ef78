"""The Popular ranking of one request: the fitted trending model (nightly scores decayed forward
plus live counters, recommender/live/counters.py) or a named window (recommender/live/windows.py),
with live sums cached per process for `max_age` seconds."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from recommender.live import windows as live_windows
from recommender.live.config import VersionConfig
from recommender.live.counters import (
    Components,
    LiveCounts,
    blend,
    decayed_totals,
    live_components,
    read_plan,
)
from recommender.reader import Reader
from recommender.windows import FITTED, PopularWindow


@dataclass(frozen=True)
class Ranked:
    """A Popular ranking, best first, the moment it describes and the window it is of."""

    items: list[tuple[str, float]]
    as_of: float
    window: str
    spec: PopularWindow | None = None
    """The named window's settings (None: the fitted model)."""
    totals: Mapping[str, Sequence[float]] = field(default_factory=dict)
    """With explain: each article's totals its score was made of, as of `as_of`."""


class PopularRanker:
    """Ranks Popular lists from the reader's nightly lists and the live counters."""

    def __init__(self, reader: Reader, live_counts: LiveCounts[Components]) -> None:
        self.reader = reader
        self.live_counts = live_counts
        self.window_counts: LiveCounts[live_windows.Totals] = LiveCounts(live_counts.max_age)

    async def ranked(
        self,
        version: str,
        section: str,
        cfg: VersionConfig,
        window_name: str,
        now: float,
        explain: bool = False,
    ) -> Ranked:
        """The section's ranking in the named window ("" or "now": the fitted model), with
        each article's totals when `explain`."""
        window = live_windows.choose_window(window_name, cfg.windows)
        if window is not None:
            return await self._window(version, section, cfg, window_name, window, now, explain)
        nightly = await self.reader.popular(version, section)
        live = await self.live_components(version, section, cfg)
        as_of = now if live else nightly.as_of if nightly else cfg.as_of
        items = blend(nightly, live, now, cfg.scoring) if live else nightly.items if nightly else []
        totals = decayed_totals(nightly, live, as_of, cfg.scoring)[0] if explain else {}
        return Ranked(items, as_of, FITTED, None, totals)

    async def live_components(
        self, version: str, section: str, cfg: VersionConfig
    ) -> dict[str, Components]:
        """Live (clicks, impressions, exposure) since the nightly model's as_of (cached)."""
        cached = self.live_counts.get(version, section)
        if cached is not None:
            return cached
        now = time.time()
        plan = read_plan(cfg.as_of, now, cfg.scoring)
        keys = self.reader.keys
        values = await self._read([keys.counter(k, g, t, section) for k, g, t in plan])
        components = live_components(plan, values, now, cfg.scoring)
        self.live_counts.put(version, section, components)
        return components

    async def _window(
        self, version: str, section: str, cfg: VersionConfig, name: str, window: PopularWindow,
        now: float, explain: bool,
    ) -> Ranked:  # fmt: skip
        nightly = await self.reader.popular(version, section, window=name)
        live = self.window_counts.get(version, f"{name}\0{section}")
        if live is None:
            plan = live_windows.read_plan(cfg.as_of, now, window, cfg.scoring)
            keys = self.reader.keys
            names = [keys.counter(k, g, t, section) for k, g, t in live_windows.hits_key_args(plan)]
            live = live_windows.live_totals(plan, await self._read(names), now, window)
            self.window_counts.put(version, f"{name}\0{section}", live)
        ranked = live_windows.rank(nightly, live, now, window)
        totals = live_windows.window_totals(nightly, live, now, window)[0] if explain else {}
        return Ranked(ranked, now, name, window, {a: t.tolist() for a, t in totals.items()})

    async def _read(self, names: list[str]) -> list[dict[bytes, bytes]]:
        """HGETALL of each counter hash, in one round trip."""
        if not names:
            return []
        return await self.reader.run(lambda p: [p.hgetall(n) for n in names])
