"""Model parameters as TOML: what `newsrec train --params FILE` reads and `newsrec tune` writes.

    [related]            # keys: the fields of training.related.params.RelatedParams
    title_weight = 1
    lsa_weight = 0.5
    [trending]           # keys: the fields of training.trending.model.TrendingParams
    half_life_hours = 6.0

Keys left out keep their defaults. TOML has no null: a parameter that may be None takes the
string "none". An unknown table or key, or a value of the wrong type or out of range, is an
error naming the file and the key. `newsrec train` flags (--top-k, --half-life-hours,
--fit-half-life) override the file's values; `train_params` applies both.
"""

from __future__ import annotations

import argparse
import json
import math
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, TypeVar

from training.related.params import RelatedParams
from training.trending.model import TrendingParams

T = TypeVar("T")
TABLES: dict[str, type] = {"related": RelatedParams, "trending": TrendingParams}


class ParamsError(ValueError):
    """A params file or override that cannot be used; the message names the file and key."""


def _coerce(hint: Any, value: object) -> tuple[bool, object]:
    """(True, value as the field wants it) when value fits the type hint."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    options = typing.get_args(hint) if union else (hint,)
    if value == "none" and type(None) in options:
        return True, None
    for option in options:
        if option is bool and isinstance(value, bool):
            return True, value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return True, value
        if option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return True, float(value)
        if option is str and isinstance(value, str):
            return True, value
    known = {bool, int, float, str, type(None)}
    return (True, value) if not set(options) <= known else (False, None)


def _type_name(hint: Any) -> str:
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    options = typing.get_args(hint) if union else (hint,)
    return " or ".join(
        '"none"' if o is type(None) else getattr(o, "__name__", str(o)) for o in options
    )


def apply_values(base: T, values: Mapping[str, object], where: str) -> T:
    """A copy of the params dataclass `base` with values checked and set; `where` prefixes
    every error (e.g. "best.toml: [related]")."""
    cls = type(base)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    changes: dict[str, object] = {}
    for key, value in values.items():
        if key not in hints or key not in names:
            raise ParamsError(f"{where} unknown key {key!r} (known: {', '.join(names)})")
        ok, coerced = _coerce(hints[key], value)
        if not ok:
            raise ParamsError(f"{where} {key}: expected {_type_name(hints[key])}, got {value!r}")
        changes[key] = coerced
    try:
        return replace(base, **changes)  # type: ignore[type-var]
    except (ValueError, TypeError) as exc:
        raise ParamsError(f"{where} {exc}") from None


def apply_overrides(
    related: RelatedParams, trending: TrendingParams, values: Mapping[str, object], where: str
) -> tuple[RelatedParams, TrendingParams]:
    """Apply dotted keys ("related.min_df" = 5, "trending.half_life_hours" = 2.0)."""
    split: dict[str, dict[str, object]] = {"related": {}, "trending": {}}
    for dotted, value in values.items():
        table, _, key = dotted.partition(".")
        if table not in split or not key:
            raise ParamsError(
                f"{where} key {dotted!r}: expected related.<field> or trending.<field>"
            )
        split[table][key] = value
    return (
        apply_values(related, split["related"], f"{where} [related]"),
        apply_values(trending, split["trending"], f"{where} [trending]"),
    )


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's tables, or a ParamsError naming the file and what is wrong."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ParamsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ParamsError(f"{path}: not valid TOML: {exc}") from None


def load_params(path: Path | str) -> tuple[RelatedParams, TrendingParams]:
    """Read a params TOML; missing keys keep their defaults."""
    path = Path(path)
    data = read_toml(path)
    for table, value in data.items():
        if table not in TABLES:
            raise ParamsError(
                f"{path}: unknown table or key {table!r} (expected [related], [trending])"
            )
        if not isinstance(value, dict):
            raise ParamsError(f"{path}: {table!r} must be a table ([{table}])")
    related = apply_values(RelatedParams(), data.get("related", {}), f"{path}: [related]")
    trending = apply_values(TrendingParams(), data.get("trending", {}), f"{path}: [trending]")
    return related, trending


def _toml_value(value: object) -> str:
    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            repr(value)
            if math.isfinite(value)
            else ("nan" if math.isnan(value) else "inf" if value > 0 else "-inf")
        )
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):  # an inline table: windows = { today = { kind = "decayed" } }
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise ParamsError(f"cannot write {value!r} to TOML")


def write_params(
    path: Path | str, related: RelatedParams, trending: TrendingParams, comment: str = ""
) -> Path:
    """Write both parameter sets in full, readable by load_params and `newsrec train --params`."""
    path = Path(path)
    lines = [f"# {line}" for line in comment.splitlines()]
    for table, params in (("related", related), ("trending", trending)):
        lines.append(f"\n[{table}]")
        lines += [f"{f.name} = {_toml_value(getattr(params, f.name))}" for f in fields(params)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines).lstrip("\n") + "\n", encoding="utf-8")
    return path


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    """The `newsrec train` flags that override parameters."""
    parser.add_argument(
        "--params", type=Path, help="params TOML ([related], [trending]) as the base"
    )
    parser.add_argument(
        "--top-k", type=int, help=f"related per article (default {RelatedParams.top_k})"
    )
    parser.add_argument(
        "--half-life-hours",
        type=float,
        help="fixed trending half-life in hours (turns the fit off unless --fit-half-life)",
    )
    parser.add_argument(
        "--fit-half-life",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fit the trending half-lives on the click log's own hourly replay"
        " (default: on, unless --half-life-hours is given)",
    )


def train_params(args: argparse.Namespace) -> tuple[RelatedParams, TrendingParams]:
    """`newsrec train` parameters: --params FILE as the base (else the defaults), then the flags
    given explicitly. --half-life-hours fixes the half-life and turns the fit off unless
    --fit-half-life is given too."""
    related, trending = (
        load_params(args.params) if args.params else (RelatedParams(), TrendingParams())
    )
    flags: dict[str, object] = {}
    if args.half_life_hours is not None:
        flags["half_life_hours"] = args.half_life_hours
        flags["fit_half_life"] = False
    if args.fit_half_life is not None:
        flags["fit_half_life"] = args.fit_half_life
    trending = apply_values(trending, flags, "command line:")
    if args.top_k is not None:
        related = apply_values(related, {"top_k": args.top_k}, "command line:")
    return related, trending
