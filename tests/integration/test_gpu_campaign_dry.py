"""benchmarks/gpu/gpu_campaign.sh with DRY=1: every stage on the CPU with tiny settings (slow tier),
so that the script is known to work before a device is lent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT


@pytest.mark.slow
def test_gpu_campaign_dry_run_writes_every_table(tmp_path):
    out = tmp_path / "campaign"
    env = {**os.environ, "DRY": "1", "OUT": str(out), "PY": sys.executable,
           "LTCL_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "benchmarks" / "gpu" / "gpu_campaign.sh")], cwd=REPO_ROOT, env=env,
        capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = (out / "throughput.md").read_text()
    for row in ("plain PyTorch loop", "ltcl simclr", "ltcl guide", "ltcl student"):
        assert row in table, table
    assert json.loads((out / "concurrent.json").read_text())["processes"] == 2
    report = (out / "comparison" / "report.md").read_text()
    for method in ("simclr", "guide", "student"):
        assert f"| {method} |" in report, report
    assert "cmp_colt" in report
    assert Path(out / "card.txt").read_text().strip() == "cpu (dry run)"
