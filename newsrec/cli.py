"""The `newsrec` command: a table of subcommands, each imported only when it runs.

Each entry names the module that implements a command and the command's name in it: the
module defines `add_<name>(parser)` (its flags) and `run_<name>(args) -> int`. Only the
chosen command's module is imported, so `newsrec serve` loads the serving code and nothing of
the training job, the workbench or the benchmarks (tests/test_layout.py holds this).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("training.commands", "fit the models on an export and a click log, and publish"),
    "check": ("training.check", "dry run: what train would read from your files, and the gates"),
    "serve": ("recommender.commands", "run the gRPC server"),
    "publish": ("training.admin", "publish a model folder already on disk (no retraining)"),
    "rollback": ("training.admin", "make an earlier published version live again"),
    "versions": ("training.admin", "list versions: trained at, counts, live and pending"),
    "export-events": ("training.commands", "write live events as a click log for training"),
    "eval": ("training.workbench.commands", "offline list quality: metrics, replay, report"),
    "tune": ("training.workbench.commands", "run a parameter grid through an evaluation"),
    "bench": ("training.bench.commands", "benchmarks: serving, neighbour search, upserts"),
    "demo": ("training.demo.commands", "generate data, train, serve and query over gRPC"),
    "demo-data": ("training.demo.commands", "write the generated demo corpus and click log"),
    "rules": ("recommender.rules.commands", "editorial pins and blocks: pin, block, list, remove"),
    "redis-stop": ("recommender.commands", "stop the embedded Redis (its data stays on disk)"),
}
"""Command -> (module, one-line help)."""


EXTRAS = {
    "sklearn": "training",
    "numba": "training",
    "matplotlib": "workbench",
    "dask": "dask",
    "distributed": "dask",
}
"""Optional dependencies and the extra that installs each (a serving image has none of them)."""


class MissingExtra(Exception):
    """A command needs an optional dependency that is not installed."""


def missing_extra(command: str, error: ModuleNotFoundError) -> MissingExtra | None:
    """The clear error for a command whose optional dependency is missing (else None)."""
    extra = EXTRAS.get((error.name or "").split(".")[0])
    if extra is None:
        return None
    return MissingExtra(
        f"newsrec {command} needs the {extra} extra ({error.name} is not installed): "
        f"pip install 'newsrec[{extra}]'"
    )


def _hooks(command: str) -> tuple[Callable[..., None], Callable[[argparse.Namespace], int]]:
    """The command's add_<name> and run_<name>, importing its module."""
    module: ModuleType = importlib.import_module(COMMANDS[command][0])
    name = command.replace("-", "_")
    return getattr(module, f"add_{name}"), getattr(module, f"run_{name}")


def build_parser(chosen: str | None) -> argparse.ArgumentParser:
    """Every command with its help; only the chosen one's flags (the others are not imported)."""
    parser = argparse.ArgumentParser(
        prog="newsrec", description="Related Articles and Popular lists for news sites."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            try:
                add, run = _hooks(name)
                add(command)
            except ModuleNotFoundError as exc:
                raise missing_extra(name, exc) or exc from None
            command.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `newsrec` console script; errors are one clear line, exit 2."""
    import redis

    from recommender.embedded import EmbeddedRedisError

    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    try:
        args = build_parser(chosen if chosen in COMMANDS else None).parse_args(argv)
    except MissingExtra as exc:
        print(f"newsrec: error: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.run(args))
    except (ValueError, EmbeddedRedisError) as exc:
        print(f"newsrec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        extra = missing_extra(args.command, exc)
        if extra is None:
            raise
        print(f"newsrec: error: {extra}", file=sys.stderr)
        return 2
    except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
        print(f"newsrec {args.command}: error: Redis: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
