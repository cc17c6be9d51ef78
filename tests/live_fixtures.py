"""The trained live server the live-update tests share, as fixtures (load with
`pytest_plugins = ["tests.live_fixtures"]`; helpers are in tests/live_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from recommender.config import Settings
from tests.corpus import write_corpus
from tests.helpers import ServerThread
from tests.live_helpers import retrain
from training.pipeline import TrainResult


@pytest.fixture
def live_settings(settings: Settings) -> Settings:
    return replace(settings, live_cache_seconds=0.0)


@pytest.fixture
def trained(tmp_path: Path, live_settings: Settings, client: redis.Redis) -> TrainResult:
    articles, clicks = write_corpus(tmp_path)
    return retrain(articles, clicks, live_settings, client)


@pytest.fixture
def live(live_settings: Settings, trained: TrainResult) -> Iterator[ServerThread]:
    running = ServerThread(live_settings)
    yield running
    running.stop()
