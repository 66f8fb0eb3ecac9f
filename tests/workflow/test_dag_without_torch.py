"""Building the DAG (``snakemake -n``) needs no PyTorch: planning a run on a login node, or
on a machine whose torch is broken, still works."""
from __future__ import annotations

import os
import subprocess
import sys

from conftest import copy_workflow


def test_dry_run_succeeds_with_torch_unimportable(tmp_path):
    workdir = copy_workflow(tmp_path / "workflow")
    blocker = tmp_path / "blocked"
    blocker.mkdir()
    (blocker / "torch.py").write_text('raise ImportError("torch is blocked in this test")\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH")]))}
    check = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert check.returncode != 0 and "blocked" in check.stderr  # the blocker works
    for extra in ([], ["--configfile", "configs/smoke.yaml"]):
        proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "2", *extra], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "train_baseline" in proc.stdout and "select_intervals" in proc.stdout
