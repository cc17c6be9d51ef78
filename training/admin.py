"""The light commands on versions: `newsrec publish` (a model folder already on disk, without
retraining), `rollback` and `versions`. They import numpy, redis and recommender.* plus the
publish code, never the training stack, so they run on a serving image (tests/test_layout.py)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recommender.config import add_settings_flags, settings_from_args
from recommender.connect import keys_for, sync_client
from training import publish as pub
from training.lock import RunLock, add_lock_flag, flip_pointer, wait_flag
from training.modeldir import find_model_dir, verify_model_dir


def add_publish(parser: argparse.ArgumentParser) -> None:
    """Flags of `newsrec publish`."""
    add_settings_flags(parser)
    parser.add_argument("--model-dir", type=Path, help="folder of model/<version>/ folders "
                        "(or one version folder); default the model_dir setting")  # fmt: skip
    parser.add_argument("--version", help="the version to publish (default: the newest folder)")
    add_lock_flag(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run_publish(args: argparse.Namespace) -> int:
    """Verify a model folder (namespace, checksums) and make it the live version."""
    settings = settings_from_args(args)
    client, keys = sync_client(settings), keys_for(settings)
    wait = wait_flag(args.wait_for_lock)
    with RunLock(client, keys, "publish", settings.lock_lease_seconds, wait) as lock:
        folder = find_model_dir(settings.model_dir, keys.namespace, args.version)
        manifest = verify_model_dir(folder, keys.namespace)
        version = str(manifest["version"])
        # A killed run's pending keys go; this folder stays even if it was that run's.
        pub.remove_leftovers(client, keys, folder.parent, keep_folder=version)
        if client.exists(keys.meta(version)):
            if pub.live_version(client, keys) == version:
                print(f"version {version} is already live in namespace {keys.namespace!r}")
                return 0
            flip_pointer(client, keys, version, lock)
            print(f"version {version} was still published: made it live again (as "
                  f"`newsrec rollback --to {version}` does)")  # fmt: skip
            return 0
        progress = not args.quiet and sys.stderr.isatty()
        options = pub.PublishOptions(settings.publish_batch, progress, lock)
        pub.publish_folder(client, keys, folder, manifest, options)
    print(f"published version {version} from {folder}: {manifest.get('articles', 0):,} "
          f"articles; live in namespace {keys.namespace!r}")  # fmt: skip
    return 0


def add_rollback(parser: argparse.ArgumentParser) -> None:
    """Flags of `newsrec rollback`."""
    add_settings_flags(parser)
    parser.add_argument("--to", help="version to restore (default: the one before the live one)")
    add_lock_flag(parser)


def run_rollback(args: argparse.Namespace) -> int:
    """Point readers at an earlier published version, under the training lock."""
    settings = settings_from_args(args)
    client, keys = sync_client(settings), keys_for(settings)
    wait = wait_flag(args.wait_for_lock)
    with RunLock(client, keys, "rollback", settings.lock_lease_seconds, wait) as lock:
        version = pub.rollback(client, keys, args.to, lock)
    print(f"live version is now {version}")
    return 0


def add_versions(parser: argparse.ArgumentParser) -> None:
    """Flags of `newsrec versions`."""
    add_settings_flags(parser)


HEADER = f"  {'version':<28} {'trained at (UTC)':<19} {'articles':>9} {'events':>11} " \
         f"{'clicks':>9}  state"  # fmt: skip


def version_row(version: str, meta: dict[str, Any], state: str) -> str:
    """One line of `newsrec versions`."""
    mark = "* " if state == "live" else "  "
    if not meta:
        return f"{mark}{version:<28} {'-':<19} {'-':>9} {'-':>11} {'-':>9}  {state}"
    trained = datetime.fromtimestamp(float(meta.get("trained_at", 0)), tz=UTC)
    events = meta.get("events", meta.get("inputs", {}).get("clicks", {}).get("rows", 0))
    return (f"{mark}{version:<28} {trained:%Y-%m-%d %H:%M:%S} {meta.get('articles', 0):>9,} "
            f"{events:>11,} {meta.get('clicks', 0):>9,}  {state}")  # fmt: skip


def run_versions(args: argparse.Namespace) -> int:
    """Published versions (the live one marked) and pending ones, with their counts."""
    settings = settings_from_args(args)
    client, keys = sync_client(settings), keys_for(settings)
    live = pub.live_version(client, keys)
    published, pending = pub.published_versions(client, keys), pub.pending_versions(client, keys)
    if not published and not pending:
        print(f"no versions in namespace {keys.namespace!r}", file=sys.stderr)
        return 0
    print(HEADER)
    for version, meta in zip(published, pub.version_meta(client, keys, published), strict=True):
        print(version_row(version, meta, "live" if version == live else "kept"))
    for version in pending:
        print(version_row(version, {}, "pending (being trained, or left by a killed run)"))
    return 0
