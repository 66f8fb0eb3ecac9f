"""The benchmarks run end to end on tiny sizes (they measure; the suite does not time them)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_benchmarks_run_quick_and_write_json_and_summary(tmp_path):
    subprocess.run([sys.executable, str(REPO / "benchmarks/run_benchmarks.py"), "--quick",
                    "--config", str(REPO / "configs/smoke.yaml"), "--out", str(tmp_path)],
                   check=True, capture_output=True, text=True, timeout=600)
    for name in ("trainer_overhead", "routing_overhead"):
        result = json.loads((tmp_path / f"{name}.json").read_text())
        assert result["ratio_min"] <= result["ratio_median"] <= result["ratio_max"]
        assert 0 < result["ratio_median"] < 10 and result["repeats"] == 2
    summary = (tmp_path / "summary.md").read_text()
    assert "trainer_overhead" in summary and "routing_overhead" in summary
