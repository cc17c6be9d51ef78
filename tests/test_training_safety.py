"""Safe training runs: one run at a time per namespace (a lock in Redis with a lease), and the
sanity gates that refuse a model a bad input would break, before anything is published."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from recommender.config import Settings
from recommender.store.keys import Keys
from tests.corpus import write_corpus
from tests.helpers import eventually, newsrec, newsrec_env, write_jsonl
from training import publish as pub
from training.gates import ClickMatch, GateRefused, Gates, check_clicks, check_related
from training.lock import LockHeld, LockLost, RunLock, flip_pointer
from training.pipeline import TrainConfig, train


def run_train(articles: Path, settings: Settings, client: redis.Redis, **kw: object) -> str:
    config = TrainConfig(articles=articles, model_dir=settings.model_dir, progress=False, **kw)  # type: ignore[arg-type]
    return train(config, client, Keys(settings.namespace), log=lambda _m: None).version


def nothing_left(client: redis.Redis, keys: Keys) -> bool:
    """No pending version and no published one."""
    return client.zcard(keys.pending) == 0 and client.zcard(keys.versions) == 0


def test_a_second_run_stops_at_once_naming_the_holder(
    tmp_path: Path, settings: Settings, client: redis.Redis, keys: Keys
) -> None:
    articles, _ = write_corpus(tmp_path)
    with RunLock(client, keys, "train"):
        for command in (["train", "--articles", str(articles)], ["rollback"], ["publish"]):
            done = newsrec(settings, *command)
            assert done.returncode == 2, done.stderr
            assert f"pid {os.getpid()}" in done.stderr and socket.gethostname() in done.stderr
            assert "`newsrec train`" in done.stderr and "--wait-for-lock" in done.stderr
            assert "Traceback" not in done.stderr
        with pytest.raises(LockHeld, match="another run holds the lock"):
            run_train(articles, settings, client)
    assert nothing_left(client, keys) and client.get(keys.lock) is None


@pytest.mark.slow
def test_wait_for_lock_waits_for_the_holder_then_publishes(
    tmp_path: Path, settings: Settings, client: redis.Redis, keys: Keys
) -> None:
    articles, _ = write_corpus(tmp_path)
    command = [sys.executable, "-m", "newsrec.cli", "train", "--articles", str(articles),
               "--quiet", "--wait-for-lock", "120"]  # fmt: skip
    with RunLock(client, keys, "train"):
        waiting = subprocess.Popen(command, env=newsrec_env(settings), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)  # fmt: skip
        time.sleep(3)  # long enough for it to read, train and want the lock, were it free
        assert waiting.poll() is None and pub.live_version(client, keys) is None
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    assert pub.live_version(client, keys) == out.split()[1].rstrip(":")


def test_the_lease_is_renewed_while_held_and_lapses_when_the_holder_is_killed(
    settings: Settings, client: redis.Redis, keys: Keys
) -> None:
    with RunLock(client, keys, "train", lease_seconds=1.0) as held:
        time.sleep(2.5)  # more than two leases: only the renewals keep it
        assert held.owned() and not held.lost.is_set()
    assert client.get(keys.lock) is None  # released: it was still ours
    script = (
        "import sys, time, redis\n"
        "from recommender.store.keys import Keys\n"
        "from training.lock import RunLock\n"
        f"lock = RunLock(redis.Redis.from_url({settings.redis_url!r}), Keys({keys.namespace!r}),"
        " 'train', lease_seconds=1.0).__enter__()\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    holder_token = json.loads(client.get(keys.lock) or b"{}")
    assert holder_token["pid"] == holder.pid and holder_token["command"] == "train"
    with pytest.raises(LockHeld, match=f"pid {holder.pid}"):
        RunLock(client, keys, "train").__enter__()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert eventually(lambda: client.get(keys.lock) is None, seconds=10)  # expired by itself
    with RunLock(client, keys, "train"):
        pass


def test_a_run_whose_lease_lapsed_cannot_flip_the_pointer(client: redis.Redis, keys: Keys) -> None:
    client.set(keys.pointer, "old")
    with RunLock(client, keys, "train", lease_seconds=1.0) as held:
        flip_pointer(client, keys, "mine", held)
        assert client.get(keys.pointer) == b"mine"
        client.set(keys.lock, b"another run took it after our lease lapsed")
        assert eventually(held.lost.is_set)  # the renewal sees it is no longer ours
        with pytest.raises(LockLost, match="lease lapsed"):
            flip_pointer(client, keys, "stale", held)
    assert client.get(keys.pointer) == b"mine"
    assert client.get(keys.lock) == b"another run took it after our lease lapsed"  # not ours


# Gates: the click-log rule on the figures measured in docs/training.md.
MIND_SAMPLE = ClickMatch(events=196_901, matched_events=5_485, ids=7_457, matched_ids=284)
FOREIGN = ClickMatch(events=196_901, matched_events=0, ids=7_457, matched_ids=0)


def test_click_gate_passes_a_sample_log_and_refuses_a_foreign_one() -> None:
    gates = Gates()
    assert Gates.from_settings(Settings()) == gates  # the library defaults are the settings'
    assert check_clicks(MIND_SAMPLE, gates) is None
    assert check_clicks(ClickMatch(95, 95, 20, 20), gates) is None  # short log, all matched
    refusal = check_clicks(FOREIGN, gates)
    assert refusal is not None and "--allow-unmatched-clicks" in refusal and "0.00%" in refusal
    few = ClickMatch(events=196_901, matched_events=40, ids=7_457, matched_ids=3)  # collisions
    assert check_clicks(few, gates) is not None
    assert check_clicks(ClickMatch(0, 0, 0, 0), gates) is not None  # an empty log
    assert check_clicks(FOREIGN, Gates(allow_unmatched_clicks=True)) is None
    assert check_related(0, 40, gates) is not None and check_related(40, 40, gates) is None


def foreign_log(path: Path, events: int) -> Path:
    """A click log of another site: none of its ids is in the corpus."""
    rows = [{"article_id": f"other-site-{i % 50}", "ts": 1_700_000_000 + i, "type": "click",
             "session_id": f"s{i}"} for i in range(events)]  # fmt: skip
    return write_jsonl(path, rows)


@pytest.mark.slow
def test_gates_refuse_a_foreign_log_and_a_truncated_export_unless_overridden(
    tmp_path: Path, settings: Settings, client: redis.Redis, keys: Keys
) -> None:
    articles, clicks = write_corpus(tmp_path)
    foreign = foreign_log(tmp_path / "foreign.jsonl", 500)
    refused = newsrec(settings, "train", "--articles", str(articles), "--clicks", str(foreign))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "click-log gate: 0 of 500 events" in refused.stderr
    assert "--allow-unmatched-clicks" in refused.stderr
    assert nothing_left(client, keys) and not any(settings.model_dir.iterdir())
    live = run_train(articles, settings, client, clicks=clicks)
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_text("".join(articles.read_text().splitlines(keepends=True)[:12]))
    with pytest.raises(GateRefused, match=r"shrink gate: the new model has 12 articles, the "
                       r"live one 40.*--allow-shrink"):  # fmt: skip
        run_train(truncated, settings, client)
    assert pub.live_version(client, keys) == live and client.zcard(keys.pending) == 0
    assert [p.name for p in settings.model_dir.iterdir()] == [live]
    forced = newsrec(settings, "train", "--articles", str(truncated), "--quiet", "--allow-shrink")
    assert forced.returncode == 0, forced.stderr
    assert pub.live_version(client, keys) != live


@pytest.mark.slow
def test_a_model_without_related_lists_is_refused(
    tmp_path: Path, settings: Settings, client: redis.Redis, keys: Keys
) -> None:
    """An export whose every row is the same story (a CMS exporting its template): all are
    near-duplicates of each other, so no list has a candidate."""
    text = "Scheduled maintenance tonight: the site will be read only for an hour"
    rows = [{"id": f"a{i}", "title": text, "body": text} for i in range(8)]
    articles = write_jsonl(tmp_path / "template.jsonl", rows)  # type: ignore[arg-type]
    refused = newsrec(settings, "train", "--articles", str(articles))
    assert refused.returncode == 2 and "related gate: 0 of 8 articles" in refused.stderr
    assert "--allow-empty-related" in refused.stderr and nothing_left(client, keys)
    forced = newsrec(settings, "train", "--articles", str(articles), "--force")
    assert forced.returncode == 0, forced.stderr
