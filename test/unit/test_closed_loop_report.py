"""``spvla-bench report``: the generated block is merged between markers and hand-written text is kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from spvla_ros.bench import report_bench
from spvla_ros.bench.cli import main as bench_main
from spvla_ros.bench.report_bench import BEGIN_MARK, END_MARK, merge


def test_merge_appends_to_hand_written_text_then_replaces_only_the_block() -> None:
    hand = "# Notes by hand\n\nkeep me\n"
    first = merge(hand, f"{BEGIN_MARK}\nv1\n{END_MARK}\n")
    assert first.startswith(hand.rstrip("\n")) and "v1" in first
    edited = first + "\n## later hand section\n"
    second = merge(edited, f"{BEGIN_MARK}\nv2\n{END_MARK}\n")
    assert "v1" not in second and "v2" in second
    assert "keep me" in second and "## later hand section" in second
    assert second.count(BEGIN_MARK) == 1 and second.count(END_MARK) == 1


def test_merge_into_empty_file_is_the_block() -> None:
    block = f"{BEGIN_MARK}\nx\n{END_MARK}\n"
    assert merge("", block) == block


def test_report_notes_a_missing_benchmark_and_keeps_existing_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report_bench, "discover", dict)  # no benchmark present
    out = tmp_path / "benchmarks.md"
    out.write_text("# hand\n")
    assert bench_main(["report", "--only", "graph", "safety", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# hand\n")
    assert BEGIN_MARK in text and END_MARK in text
    assert "| `graph` | skipped | benchmark not present yet |" in text
    assert "| `safety` | skipped | benchmark not present yet |" in text


def test_report_rejects_an_unknown_benchmark_name(tmp_path: Path) -> None:
    assert bench_main(["report", "--only", "no-such-bench", "--out", str(tmp_path / "x.md")]) == 2
    assert not (tmp_path / "x.md").exists()


@pytest.mark.slow
def test_report_runs_the_closed_loop_bench_with_machine_date_and_command(tmp_path: Path) -> None:
    pytest.importorskip("metaworld", reason="needs metaworld (pip install -r requirements/main-metaworld.txt)")
    out = tmp_path / "benchmarks.md"
    assert bench_main(["report", "--only", "closed-loop", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| `closed-loop` | ok |" in text
    assert "spvla-bench closed-loop --quick --json" in text and "UTC" in text
    for method in ("every_step", "fixed_chunk_k4", "ensemble", "sp_vla_surprise", "sp_vla_surprise_chunk"):
        assert f"| {method} | 2 |" in text
    assert (tmp_path / "benchmarks" / "closed-loop.png").stat().st_size > 0
    assert "![closed-loop" in text
