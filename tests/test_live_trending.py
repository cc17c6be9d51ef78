"""Live trending arithmetic on numbers with obvious answers."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable

import pytest

from recommender.domain import EVENT_TYPES
from recommender.live.counters import (
    CLICKS,
    COUNTED_AS,
    EXPOSURE,
    GRAINS,
    TrendingScoring,
    blend,
    bucket_start,
    buckets_to_read,
    counter_increments,
    decayed_sums,
    live_components,
    read_plan,
)
from recommender.scoring import HOUR, BetaPrior, trending_score
from recommender.store.codec import PopularList
from recommender.store.keys import Keys

T0 = 1_767_225_600  # an exact hour


def bucket_weights(
    events: Iterable[tuple[str, float, tuple[str, ...]]], kind: str, keys: Keys, half_life: float
) -> dict[tuple[str, str], float]:
    """The reference: each event's in-bucket weight 2^((ts - start) / half_life), one event at
    a time, summed per (counter key, article) for (article, ts, sections) events."""
    sums: dict[tuple[str, str], float] = defaultdict(float)
    for article_id, ts, sections in events:
        for grain, size in GRAINS:
            start = bucket_start(ts, size)
            for section in ("", *sections):
                key = keys.counter(kind, grain, start, section)
                sums[(key, article_id)] += 2.0 ** ((ts - start) / half_life)
    return sums


def test_bucket_weights_decay_to_each_events_exact_weight() -> None:
    keys = Keys("n")
    events = [("a", T0 + 10.0, ("World",)), ("a", T0 + 1800.0, ()), ("b", T0 + 3599.0, ())]
    weights = bucket_weights(events, CLICKS, keys, HOUR)
    hour_key = keys.counter(CLICKS, "h", T0, "")
    hashed = {aid: w for (key, aid), w in weights.items() if key == hour_key}
    now = T0 + 2 * HOUR
    got = decayed_sums([("h", T0)], [hashed], now, HOUR)
    assert got["a"] == pytest.approx(
        2 ** (-(now - T0 - 10) / HOUR) + 2 ** (-(now - T0 - 1800) / HOUR)
    )
    assert got["b"] == pytest.approx(2 ** (-(now - T0 - 3599) / HOUR))
    assert (keys.counter(CLICKS, "h", T0, "world"), "a") in weights  # per section too
    assert (keys.counter(CLICKS, "m", T0 + 1800, ""), "a") in weights  # and per minute


def test_buckets_cover_each_moment_after_as_of_once() -> None:
    as_of = T0 + 125.0  # mid-minute: that minute was trained on
    plan = buckets_to_read(as_of, T0 + 2 * HOUR + 30, 72 * HOUR)
    minutes = [t for g, t in plan if g == "m"]
    hours = [t for g, t in plan if g == "h"]
    assert minutes == list(range(T0 + 180, T0 + 3600, 60))
    assert hours == [T0 + 3600, T0 + 7200]
    on_the_hour = buckets_to_read(float(T0), T0 + 90.0, 72 * HOUR)
    assert on_the_hour == [("h", T0)]


def test_read_plan_limits_exposure_to_its_short_horizon() -> None:
    cfg = TrendingScoring(
        half_life=HOUR, exposure_half_life=0.25 * HOUR, window=72 * HOUR, prior=None
    )
    plan = read_plan(float(T0), T0 + 24 * HOUR, cfg)
    exposure_hours = [t for k, g, t in plan if k == EXPOSURE]
    click_hours = [t for k, g, t in plan if k == CLICKS]
    assert len(exposure_hours) == 5 and len(click_hours) == 17  # 4 h and 16 h back, inclusive


def test_blend_uses_the_shared_formula() -> None:
    prior = BetaPrior(2.0, 38.0)
    cfg = TrendingScoring(
        half_life=HOUR, exposure_half_life=0.25 * HOUR, window=72 * HOUR, prior=prior
    )
    nightly = PopularList(
        as_of=T0,
        items=[("old", 5.0), ("steady", 1.0)],
        components={"old": (10.0, 100.0, 8.0), "steady": (4.0, 40.0, 2.0)},
    )
    now = T0 + HOUR
    live = {"new": (3.0, 10.0, 9.0), "steady": (1.0, 10.0, 3.0)}
    ranked = dict(blend(nightly, live, now, cfg))
    expected_new = trending_score(3.0, 10.0, 9.0, prior)
    expected_steady = trending_score(4.0 * 0.5 + 1.0, 40.0 * 0.5 + 10.0, 2.0 / 16 + 3.0, prior)
    expected_old = trending_score(10.0 * 0.5, 100.0 * 0.5, 8.0 / 16, prior)
    assert ranked["new"] == pytest.approx(float(expected_new))
    assert ranked["steady"] == pytest.approx(float(expected_steady))
    assert ranked["old"] == pytest.approx(float(expected_old))
    assert next(iter(ranked)) == "new"


def test_live_components_split_kinds() -> None:
    cfg = TrendingScoring(half_life=HOUR, exposure_half_life=HOUR, window=72 * HOUR, prior=None)
    plan = [(CLICKS, "h", T0), ("views", "h", T0), (EXPOSURE, "h", T0)]
    values = [{b"a": b"1"}, {b"a": b"4"}, {b"a": b"2"}]
    assert live_components(plan, values, T0, cfg) == {"a": (1.0, 4.0, 2.0)}


def test_counter_increments_add_up_to_each_events_bucket_weight() -> None:
    """The write path's per-batch increments (numpy, per article) are the same sums as
    bucket_weights (per event), for every kind, grain, bucket and section hash."""
    rng = random.Random(3)
    keys = Keys("n")
    cfg = TrendingScoring(
        half_life=HOUR, exposure_half_life=0.25 * HOUR, window=72 * HOUR, prior=None
    )
    sections = {"a": ("World",), "b": (), "c": ("Sport", "sport"), "d": ("World", "Europe")}
    events = [
        (rng.choice("abcd"), T0 + rng.uniform(0, 3 * HOUR), rng.choice(EVENT_TYPES), "s")
        for _ in range(500)
    ]
    increments = counter_increments(events, sections, keys, cfg)
    got: dict[tuple[str, str], float] = defaultdict(float)
    for key, pieces in increments.items():
        for piece in pieces:
            field, amount = piece.split(" ")
            got[(key, field)] += float(amount)  # as INCREMENT_FIELDS adds them
    want: dict[tuple[str, str], float] = defaultdict(float)
    for kind, names in COUNTED_AS.items():
        for name in names:
            rows = [(a, ts, sections[a]) for a, ts, k, _ in events if k == kind]
            for cell, weight in bucket_weights(rows, name, keys, cfg.half_life_of(name)).items():
                want[cell] += weight
    assert got.keys() == want.keys()
    # "Sport" and "sport" share a hash: two increments there, one summed weight in `want`
    for cell, weight in want.items():
        # Equal up to summation order (numpy picks SIMD kernels by CPU): a wrong weight is off
        # by far more than this.
        assert got[cell] == pytest.approx(weight, rel=1e-12)
    assert {k.split(":")[2] for k in increments} == {CLICKS, "views", EXPOSURE}
