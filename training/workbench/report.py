"""HTML reports with tables and PNG plots for the offline tools (engineers look at plots)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Series = dict[str, tuple[Sequence[float], Sequence[float]]]


def pyplot() -> Any:
    """matplotlib.pyplot drawing to files (Agg), or a clear error naming the extra to install:
    plots are the workbench's, and matplotlib is an optional dependency."""
    try:
        import matplotlib
    except ImportError:
        raise ValueError(
            "plots need matplotlib, the workbench extra: pip install -e '.[workbench]'"
            " (make installs it)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@dataclass
class _Table:
    caption: str
    headers: list[str]
    rows: list[list[object]]


@dataclass
class _Plot:
    caption: str
    filename: str
    kind: str
    x_label: str
    y_label: str
    series: Series
    labels: list[str] = field(default_factory=list)


@dataclass
class Report:
    """Collects tables and plots, then writes index.html and the PNGs into one folder."""

    title: str
    notes: list[str] = field(default_factory=list)
    parts: list[_Table | _Plot] = field(default_factory=list)

    def note(self, text: str) -> None:
        """A paragraph of context (what was measured, on what data)."""
        self.notes.append(text)

    def table(self, caption: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        """A table; floats are shown with 4 decimals."""
        self.parts.append(_Table(caption, list(headers), [list(r) for r in rows]))

    def lines(self, caption: str, x_label: str, y_label: str, series: Series) -> None:
        """A line plot with one line per named series of (xs, ys)."""
        name = f"plot{len(self.parts)}.png"
        self.parts.append(_Plot(caption, name, "lines", x_label, y_label, series))

    def bars(
        self, caption: str, y_label: str, labels: Sequence[str], values: Sequence[float]
    ) -> None:
        """A bar chart of one value per label."""
        name = f"plot{len(self.parts)}.png"
        series: Series = {y_label: (list(range(len(values))), list(values))}
        self.parts.append(_Plot(caption, name, "bars", "", y_label, series, list(labels)))

    def write(self, directory: Path) -> Path:
        """Write index.html and its PNGs; returns the HTML path."""
        plt = pyplot()

        directory.mkdir(parents=True, exist_ok=True)
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        body += [f"<p>{html.escape(n)}</p>" for n in self.notes]
        for part in self.parts:
            if isinstance(part, _Table):
                body.append(_table_html(part))
                continue
            fig, ax = plt.subplots(figsize=(8, 4.2))
            if part.kind == "bars":
                (xs, ys) = next(iter(part.series.values()))
                ax.bar(list(xs), list(ys))
                ax.set_xticks(list(xs), part.labels, rotation=30, ha="right")
            else:
                for label, (xs, ys) in part.series.items():
                    ax.plot(list(xs), list(ys), marker="o", markersize=3, label=label)
                ax.legend()
            ax.set_xlabel(part.x_label)
            ax.set_ylabel(part.y_label)
            ax.set_title(part.caption)
            ax.grid(alpha=0.3)
            fig.tight_layout()
            fig.savefig(directory / part.filename, dpi=100)
            plt.close(fig)
            body.append(
                f'<figure><img src="{part.filename}" alt="{html.escape(part.caption)}">'
                f"<figcaption>{html.escape(part.caption)}</figcaption></figure>"
            )
        page = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>body{{font-family:sans-serif;"
            "max-width:960px;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
            "caption{font-weight:bold;text-align:left}</style></head><body>"
            + "\n".join(body)
            + "</body></html>"
        )
        path = directory / "index.html"
        path.write_text(page)
        return path


def _cell(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else html.escape(str(value))


def _table_html(table: _Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in table.rows
    )
    return f"<table><caption>{html.escape(table.caption)}</caption><tr>{head}</tr>{rows}</table>"
