"""The benchmark records and their index: the summary scripts rebuild the committed tables from
the committed records byte for byte, and every path that benchmarks/README.md and
docs/research_record.md name exists (a move that misses a reference fails here)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

BENCH = REPO_ROOT / "benchmarks"
CAMPAIGN = BENCH / "campaign" / "results" / "campaign_cifar10_lt_cpu"
PEERS = BENCH / "peers" / "results" / "peers_cifar10_lt_cpu"


def test_peers_summary_rebuilds_the_recorded_table(tmp_path):
    out = tmp_path / "summary.md"
    done = subprocess.run(
        [sys.executable, str(BENCH / "peers" / "peers_summary.py"), str(PEERS), str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.read_text() == (PEERS / "summary.md").read_text()


def test_the_peers_report_is_ltcl_report_on_the_records_as_typed(tmp_path):
    """benchmarks/peers/peers_report.sh runs the ltcl-report console command (LaTeX, figures):
    its tables equal the committed report's, but for the line naming the machine's path."""
    done = subprocess.run(
        ["bash", str(BENCH / "peers" / "peers_report.sh")], cwd=tmp_path,
        env={**os.environ, "BIN": str(Path(sys.executable).parent), "OUT": str(tmp_path / "r")},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    recorded = BENCH / "peers" / "results" / "peers_official_cifar10_lt_cpu" / "report"
    assert (tmp_path / "r" / "report.tex").read_text() == (recorded / "report.tex").read_text()

    def lines(path):
        return [x for x in path.read_text().splitlines() if not x.startswith("## Runs (paths")]

    assert lines(tmp_path / "r" / "report.md") == lines(recorded / "report.md")
    figures = sorted(p.name for p in (tmp_path / "r").glob("*.png"))
    assert figures == sorted(p.name for p in recorded.glob("*.png")) and len(figures) == 6


@pytest.fixture
def campaign_scripts(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH / "campaign"))


def test_plain_student_summary_rebuilds_the_recorded_table(campaign_scripts):
    import plain_student_summary

    report = plain_student_summary.summarise(CAMPAIGN)
    assert plain_student_summary.markdown(report) == (CAMPAIGN / "plain_student.md").read_text()


def test_paired_differences_rebuild_the_recorded_table(campaign_scripts):
    pytest.importorskip("optuna")
    from campaign_summary import paired_differences

    table = paired_differences(CAMPAIGN / "runs" / "campaign_final" / "multirun")
    assert table == (CAMPAIGN / "paired.md").read_text()


def named_paths(text: str) -> set[str]:
    """Repository paths (benchmarks/...) a Markdown file names, placeholders and globs left out."""
    found = {m.rstrip(".,:;)") for m in re.findall(r"benchmarks/[\w./{},<>*-]*", text)}
    return {p for p in found if not re.search(r"[{}<>*]|\.\.\.", p)}


@pytest.mark.parametrize("doc", ["benchmarks/README.md", "docs/research_record.md"])
def test_every_benchmark_path_the_docs_name_exists(doc):
    text = (REPO_ROOT / doc).read_text(encoding="utf-8")
    paths = named_paths(text)
    if doc == "benchmarks/README.md":  # its table names paths relative to benchmarks/
        cells = re.findall(r"`((?:baseline|throughput|gpu|peers|campaign|analyses)/[^`]*)`", text)
        paths |= {f"benchmarks/{p}" for p in cells if not re.search(r"[{}<>*]", p)}
    assert len(paths) > 20
    missing = sorted(p for p in paths if not (REPO_ROOT / p).exists())
    assert not missing, f"{doc} names paths that do not exist: {missing}"


def test_the_index_names_every_script():
    index = (BENCH / "README.md").read_text(encoding="utf-8")
    scripts = [p for p in BENCH.rglob("*") if p.suffix in (".sh", ".py")]
    scripts = [p.relative_to(BENCH).as_posix() for p in scripts if "queues" not in p.parts]
    assert len(scripts) > 30
    assert [s for s in scripts if f"`{s}`" not in index] == []
    assert "`campaign/queues/*.sh`" in index
