"""`newsrec publish --model-dir DIR [--version V]`: a model folder already on disk back into
Redis without retraining, byte for byte; folders failing their checksums or bound to another
namespace refused; and the command loads no training stack."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import redis

from recommender.config import Settings
from recommender.store.keys import Keys
from tests.corpus import write_corpus
from tests.helpers import newsrec, newsrec_env
from tests.test_layout import ROOT, TRAINING_STACK
from training import publish as pub
from training.pipeline import TrainConfig, train


def trained(tmp_path: Path, settings: Settings, client: redis.Redis, runs: int = 1) -> list[str]:
    articles, clicks = write_corpus(tmp_path)
    config = TrainConfig(articles=articles, clicks=clicks, model_dir=settings.model_dir,
                         progress=False)  # fmt: skip
    keys = Keys(settings.namespace)
    return [train(config, client, keys, log=lambda _m: None).version for _ in range(runs)]


def snapshot(client: redis.Redis, namespace: str) -> dict[bytes, bytes]:
    """Every string key of the namespace with its value."""
    found = {}
    for key in client.scan_iter(match=f"{namespace}:v:*", count=1000):
        found[key] = client.get(key)
    return found  # type: ignore[return-value]


def wipe(client: redis.Redis, namespace: str) -> None:
    """What a Redis restarted without persistence leaves of the namespace: nothing."""
    doomed = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    if doomed:
        client.unlink(*doomed)


def test_publish_restores_every_key_of_the_live_version_byte_for_byte(
    tmp_path: Path, settings: Settings, client: redis.Redis, keys: Keys
) -> None:
    (version,) = trained(tmp_path, settings, client)
    before = snapshot(client, settings.namespace)
    assert len(before) > 80 and keys.meta(version).encode() in before
    wipe(client, settings.namespace)
    done = newsrec(settings, "publish")  # the newest folder of model_dir
    assert done.returncode == 0, done.stderr
    assert f"published version {version}" in done.stdout
    assert pub.live_version(client, keys) == version
    assert snapshot(client, settings.namespace) == before
    assert client.zcard(keys.pending) == 0 and client.get(keys.lock) is None
    again = newsrec(settings, "publish", "--version", version)
    assert again.returncode == 0 and "already live" in again.stdout


def test_publish_of_a_kept_version_makes_it_live_again(
    tmp_path: Path, settings: Settings, client: redis.Redis, keys: Keys
) -> None:
    first, second = trained(tmp_path, settings, client, runs=2)
    assert pub.live_version(client, keys) == second
    done = newsrec(settings, "publish", "--model-dir", str(settings.model_dir), "--version", first)
    assert done.returncode == 0 and "made it live again" in done.stdout
    assert pub.live_version(client, keys) == first


def test_publish_refuses_a_damaged_folder_naming_the_file(
    tmp_path: Path, settings: Settings, client: redis.Redis, keys: Keys
) -> None:
    (version,) = trained(tmp_path, settings, client)
    wipe(client, settings.namespace)
    records = settings.model_dir / version / "records.tsv"
    data = bytearray(records.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    records.write_bytes(bytes(data))
    done = newsrec(settings, "publish", "--model-dir", str(settings.model_dir / version))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "records.tsv: fails its checksum" in done.stderr
    assert pub.live_version(client, keys) is None and client.zcard(keys.pending) == 0
    (settings.model_dir / version / "popular.json").unlink()
    missing = newsrec(settings, "publish", "--version", version)
    assert missing.returncode == 2 and "popular.json: missing" in missing.stderr


def test_publish_refuses_a_folder_of_another_namespace(
    tmp_path: Path, settings: Settings, client: redis.Redis, namespace: str
) -> None:
    (version,) = trained(tmp_path, settings, client)
    manifest = json.loads((settings.model_dir / version / "manifest.json").read_text())
    assert manifest["namespace"] == namespace and "records.tsv" in manifest["files"]
    assert set(manifest["files"]) == {
        p.name for p in (settings.model_dir / version).iterdir() if p.name != "manifest.json"
    }
    other = replace(settings, namespace=f"{namespace}-other")
    done = newsrec(other, "publish", "--version", version)
    assert done.returncode == 2
    assert f"trained for namespace {namespace!r}, not '{namespace}-other'" in done.stderr
    assert pub.live_version(client, Keys(other.namespace)) is None
    wipe(client, other.namespace)


def test_newsrec_publish_loads_no_training_stack(
    tmp_path: Path, settings: Settings, client: redis.Redis, keys: Keys
) -> None:
    """`newsrec publish` runs on a serving image: its module chain imports neither
    scikit-learn, numba nor matplotlib, nor the job's fitting code."""
    (version,) = trained(tmp_path, settings, client)
    wipe(client, settings.namespace)
    script = (
        "import sys\n"
        "from newsrec.cli import main\n"
        "code = main(['publish'])\n"
        "print(' '.join(sorted(sys.modules)))\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=newsrec_env(settings), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert "training.admin" in loaded and "training.publish" in loaded
    heavy = sorted(m for m in loaded if m.split(".")[0] in TRAINING_STACK)
    fitting = sorted(m for m in loaded if m.startswith(("training.pipeline", "training.search",
                     "training.related.model", "training.trending")))  # fmt: skip
    assert not heavy and not fitting, heavy + fitting
    assert pub.live_version(client, keys) == version
