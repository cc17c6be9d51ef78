"""`newsrec serve` and `newsrec redis-stop`: the serving side's commands (see newsrec/cli.py)."""

from __future__ import annotations

import argparse
import asyncio

from recommender.config import add_settings_flags, settings_from_args


def add_serve(parser: argparse.ArgumentParser) -> None:
    """Flags of `newsrec serve`."""
    add_settings_flags(parser)
    parser.add_argument("--port", type=int, help="gRPC port (default $NEWSREC_PORT or 50051)")
    parser.add_argument("--host", help="bind address (default 127.0.0.1)")
    parser.add_argument("--role", choices=["all", "reader", "writer"],
                        help="calls it answers (default $NEWSREC_ROLE or all)")  # fmt: skip


def run_serve(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT."""
    from recommender.logs import configure
    from recommender.server import serve

    settings = settings_from_args(args, port=args.port, host=args.host, role=args.role)
    configure(settings.log_level, settings.log_format)
    asyncio.run(serve(settings))
    return 0


def add_redis_stop(parser: argparse.ArgumentParser) -> None:
    """Flags of `newsrec redis-stop`."""
    add_settings_flags(parser)


def run_redis_stop(args: argparse.Namespace) -> int:
    """Stop the embedded Redis of this data folder."""
    from recommender.embedded import stop_embedded

    stopped = stop_embedded(settings_from_args(args).data_dir)
    print("embedded Redis stopped" if stopped else "embedded Redis was not running")
    return 0
