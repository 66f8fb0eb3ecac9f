"""The workflow scripts' log preamble: stdout and stderr to the job's log, one first line naming the job."""
from __future__ import annotations

import subprocess
import sys

from mdmlib.runtime.logs import job_name, script_name


def test_script_name_strips_snakemakes_temporary_prefix():
    assert script_name(".snakemake/scripts/tmpa1b2_c3d.train_model.py") == "train_model.py"
    assert script_name("workflow_scripts/train_model.py") == "train_model.py"


def test_job_name_is_the_rule_and_its_wildcards():
    assert job_name("results/digits/smoke/logs/prepare_data.log") == "prepare_data"
    assert job_name("results/digits/smoke/logs/train_model/t0-1000_i40.log") == "train_model/t0-1000_i40"


def run_script(tmp_path, log, append):
    script = tmp_path / "tmpxyz.some_rule.py"
    script.write_text("import sys\nfrom mdmlib.runtime.logs import log_to\n"
                      f"log_to({str(log)!r}, append={append})\nprint('to stdout')\n"
                      "print('to stderr', file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    assert proc.stdout == proc.stderr == ""  # everything went to the log


def test_log_to_sends_both_streams_to_the_log_after_one_first_line(tmp_path):
    log = tmp_path / "logs" / "some_rule" / "job_1.log"
    log.parent.mkdir(parents=True)
    run_script(tmp_path, log, append=False)
    lines = log.read_text().splitlines()
    assert lines[0].startswith("== some_rule.py (some_rule/job_1) started ") and len(lines) == 3
    assert lines[1:] == ["to stdout", "to stderr"]
    run_script(tmp_path, log, append=False)  # a fresh attempt starts the log over
    assert len(log.read_text().splitlines()) == 3
    run_script(tmp_path, log, append=True)  # append keeps the earlier attempt
    lines = log.read_text().splitlines()
    assert len(lines) == 6 and lines[3].startswith("== some_rule.py")
