"""Reports are real HTML with real PNG plots."""

from __future__ import annotations

from pathlib import Path

from training.workbench.report import Report


def test_report_writes_html_and_pngs(tmp_path: Path) -> None:
    report = Report("Replay <metrics>")
    report.note("measured on test data")
    report.table("leaderboard", ["name", "ndcg"], [["decay", 0.61234], ["1h", 0.5]])
    report.lines("ndcg by hour", "hour", "nDCG@10", {"decay": ([0, 1, 2], [0.5, 0.6, 0.7])})
    report.bars("precision by label", "P@10", ["sport", "tech"], [0.9, 0.8])
    page = report.write(tmp_path / "r").read_text()
    assert "Replay &lt;metrics&gt;" in page and "<td>0.6123</td>" in page
    pngs = sorted((tmp_path / "r").glob("*.png"))
    assert len(pngs) == 2
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 1000 for p in pngs)
    assert all(p.name in page for p in pngs)
