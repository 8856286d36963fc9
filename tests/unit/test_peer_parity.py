"""The parity harness's pure parts (benchmarks/peers/parity.py): rows, verdicts, the table, the
refusal without official checkouts, and the recorded output. No official checkout needed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "peers" / "results" / "peer_parity"


@pytest.fixture(scope="module")
def pp():
    spec = importlib.util.spec_from_file_location(
        "peer_parity", ROOT / "benchmarks" / "peers" / "parity.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_verdict_renders_with_its_reason(pp):
    same = pp.row("SDCLR", "mask", "a", "b", pp.SAME, max_abs_diff=0.0)
    harmless = pp.row("BCL", "cutout", "a", "b", pp.HARMLESS, "one pixel")
    fixed = pp.row("COLT", "budgets", "a", "b", pp.FIXED, "remainder to the last cluster")
    could = pp.row("all peers", "wd", "a", "b", pp.COULD_CHANGE, "BN decayed", evidence="3 steps")
    assert pp.verdict_cell(same) == "same [max abs diff 0]"
    assert pp.verdict_cell(harmless) == "differs (harmless: one pixel)"
    assert pp.verdict_cell(fixed) == "fixed (remainder to the last cluster)"
    assert pp.verdict_cell(could) == "differs (could change results: BN decayed); open [3 steps]"
    kept = pp.row("all peers", "OOD pool", "a", "b", pp.COULD_CHANGE, "another pool")
    assert pp.verdict_cell(kept).startswith("differs (could change results: another pool); kept: ")


def test_every_recorded_difference_that_could_change_results_has_a_reason_to_be_kept(pp):
    """Issue 26: nothing left at "could change results" without a reason."""
    rows = json.loads((RESULTS / "parity.json").read_text())["rows"]
    open_rows = [r["component"] for r in rows if r["verdict"] == pp.COULD_CHANGE]
    assert open_rows, "the record has could-change rows; this test guards their reasons"
    assert [c for c in open_rows if c not in pp.KEPT] == []
    page = (ROOT / "docs" / "peer_parity.md").read_text()
    assert "*Open.*" not in page and page.count("*Kept:*") == len(open_rows)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"verdict": "close enough"}, "unknown verdict"),
        ({"verdict": "differs (harmless)", "why": ""}, "needs a why"),
        ({"verdict": "fixed", "why": " "}, "needs a why"),
        ({"verdict": "differs (could change results)"}, "needs a why"),
        ({"group": "SimCLR"}, "unknown group"),
        ({"official": ""}, "lacks"),
        ({"max_abs_diff": "0"}, "max_abs_diff"),
    ],
)
def test_incomplete_rows_are_refused(pp, change, message):
    r = {**pp.row("SDCLR", "mask", "ltcl side", "official side", pp.SAME), **change}
    with pytest.raises(ValueError, match=message):
        pp.check_row(r)


def test_a_measured_difference_beyond_tolerance_is_never_harmless(pp):
    ok = pp.measured("COLT", "pick", "a", "b", 0.0, 0.0, pp.FIXED, "sklearn k-means")
    assert ok["verdict"] == pp.FIXED
    bad = pp.measured("COLT", "pick", "a", "b", 3.0, 0.0, pp.FIXED, "sklearn k-means")
    assert bad["verdict"] == pp.COULD_CHANGE
    assert "measured max abs diff 3 > tolerance 0" in bad["why"]
    nan = pp.measured("SDCLR", "loss", "a", "b", float("nan"), 1e-9)
    assert nan["verdict"] == pp.COULD_CHANGE


def test_table_groups_rows_and_names_commits_and_command(pp, tmp_path):
    rows = [
        pp.row("COLT", "tail | score", "ltcl", "official", pp.SAME, max_abs_diff=1e-16),
        pp.row("SDCLR", "mask", "ltcl", "official", pp.FIXED, "ceil count"),
    ]
    meta = {
        "command": "python benchmarks/peers/parity.py",
        "repos": {"SDCLR": {"commit": "f1490fc", "url": "u"}},
    }
    text = pp.format_markdown(rows, meta)
    assert "`python benchmarks/peers/parity.py`" in text and "`f1490fc`" in text
    assert text.index("## SDCLR") < text.index("## COLT")  # peers in a fixed order
    assert "tail \\| score" in text  # a pipe in a cell does not break the table
    assert "| component | ltcl | official | verdict |" in text
    path = pp.write_results(rows, meta, tmp_path)
    assert path.read_text() == text
    assert json.loads((tmp_path / "parity.json").read_text())["rows"] == rows


def test_missing_checkouts_are_refused_clearly(pp, tmp_path):
    with pytest.raises(SystemExit, match="SDCLR_REPO is not set"):
        pp.resolve_repos({})
    env = {var: str(tmp_path / name) for name, (var, _, _) in pp.REPOS.items()}
    with pytest.raises(SystemExit, match="prune/mask.py is missing"):
        pp.resolve_repos(env)
    for name, (_, marker, _) in pp.REPOS.items():
        (tmp_path / name / marker).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name / marker).write_text("")
    assert pp.resolve_repos(env) == {name: tmp_path / name for name in pp.REPOS}


def test_shell_defaults_are_read_from_official_scripts(pp):
    script = "batch_size=${batch_size:-512}\npretrain_temp=${pretrain_temp:-0.2}\ndata_root=${data_root:-'path/to/cifar'}\n"
    assert pp.shell_default(script, "batch_size") == "512"
    assert pp.shell_default(script, "pretrain_temp") == "0.2"
    assert pp.shell_default(script, "data_root") == "path/to/cifar"
    assert pp.shell_default(script, "budget") is None


def test_recorded_table_has_a_verdict_for_every_component(pp):
    record = json.loads((RESULTS / "parity.json").read_text())
    rows, meta = record["rows"], record["meta"]
    assert len(rows) >= 30
    for r in rows:
        pp.check_row(r)  # same / differs (harmless, why) / fixed / differs (could change, why)
    assert {r["group"] for r in rows} == set(pp.GROUPS)
    for name in pp.REPOS:
        assert len(meta["repos"][name]["commit"]) == 40
    assert (RESULTS / "parity.md").read_text() == pp.format_markdown(rows, meta)


def test_docs_page_is_the_recorded_table(pp):
    record = json.loads((RESULTS / "parity.json").read_text())
    page = (ROOT / "docs" / "peer_parity.md").read_text()
    assert page == pp.docs_page(record["rows"], record["meta"])
    for name in pp.REPOS:
        assert record["meta"]["repos"][name]["commit"] in page
    assert "SDCLR_REPO=" in page  # the command
