"""Plain-text tables for the workbench's leaderboards."""

from __future__ import annotations

import math


def format_table(headers: list[str], rows: list[list[object]], decimals: int = 4) -> str:
    """The first column left-aligned, the rest right-aligned; floats with `decimals`, NaN '-'."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "-" if math.isnan(value) else f"{value:.{decimals}f}"
        return str(value)

    cells = [headers] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    )
