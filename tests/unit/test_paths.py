"""mdmlib.paths: the one place result paths are spelled, for concrete values and wildcard patterns alike."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO, SMOKE_OUT

from mdmlib import paths
from mdmlib.config import load_config

OUT = "results/digits/default"


def test_the_run_folder_is_results_dataset_experiment():
    cfg = load_config(str(REPO / "config.yaml"))
    assert paths.run_dir(cfg) == f"results/{cfg.data.dataset}/{cfg.experiment}"
    assert paths.experiment_label(cfg) == f"{cfg.data.dataset}/{cfg.experiment}"
    assert str(SMOKE_OUT) == "results/digits/smoke"


def test_concrete_paths():
    assert paths.snapshot(OUT, "t0-1000_i40", 3) == f"{OUT}/models/t0-1000_i40/point_3.pt"
    assert paths.loss_csv(OUT, "m") == f"{OUT}/models/m/loss.csv"
    assert paths.timing_csv(OUT, "m") == f"{OUT}/models/m/timing.csv"
    assert paths.state_dir(OUT, "m") == f"{OUT}/state/m"
    assert paths.choice(OUT, "snr", 3) == f"{OUT}/intervals/snr_n3.json"
    assert paths.interval_figures(OUT, "snr", 3) == f"{OUT}/figures/intervals/snr_n3"
    assert paths.samples(OUT, "mdm", 2) == f"{OUT}/samples/mdm/point_2.npz"
    assert paths.seed_sets(OUT, "mdm") == f"{OUT}/samples/mdm/seed_sets"
    assert paths.series(OUT, "mdm") == f"{OUT}/metrics/mdm.csv"
    assert paths.extra_samples(OUT, "mdm", 2) == f"{OUT}/samples/mdm/point_2_sets.npz"
    assert paths.series_sets(OUT, "mdm") == f"{OUT}/metrics/mdm_sets.csv"
    assert paths.heldout_losses(OUT) == f"{OUT}/metrics/heldout_loss.csv"
    assert paths.seed_spread(OUT, "mdm") == f"{OUT}/metrics/mdm_seeds.csv"
    assert paths.table(OUT, "quality", "md") == f"{OUT}/tables/quality.md"
    assert paths.figure(OUT, "fid_vs_cost", "pdf") == f"{OUT}/figures/fid_vs_cost.pdf"
    assert paths.sample_grid(OUT, "mdm", "png") == f"{OUT}/figures/samples_mdm.png"
    assert paths.log(OUT, "prepare_data") == f"{OUT}/logs/prepare_data.log"
    assert paths.log(OUT, "train_model", "m") == f"{OUT}/logs/train_model/m.log"
    assert paths.benchmark(OUT, "prepare_data") == f"{OUT}/benchmarks/prepare_data.tsv"
    assert paths.benchmark(OUT, "sample_point", "mdm_2") == f"{OUT}/benchmarks/sample_point/mdm_2.tsv"
    assert paths.reallocation_plan(OUT) == f"{OUT}/convergence/reallocation.json"


def test_wildcard_placeholders_pass_through_and_path_folders_work():
    assert paths.snapshot(OUT, "{model}", 3) == f"{OUT}/models/{{model}}/point_3.pt"
    assert paths.choice(OUT, "{method}", "{n}") == f"{OUT}/intervals/{{method}}_n{{n}}.json"
    assert paths.log(OUT, "sample_point", "{run}_{point}") == f"{OUT}/logs/sample_point/{{run}}_{{point}}.log"
    workdir = Path("/tmp/work")
    assert Path(workdir / paths.series(SMOKE_OUT, "mdm")) == workdir / SMOKE_OUT / "metrics/mdm.csv"
    assert paths.series(workdir / SMOKE_OUT, "mdm") == str(workdir / SMOKE_OUT / "metrics/mdm.csv")


def test_paths_and_logs_import_without_torch():
    code = ("import sys; sys.modules['torch'] = None; import mdmlib.paths, mdmlib.runtime.logs; "
            "print(sorted(m for m in sys.modules if m.startswith('mdmlib')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == ("['mdmlib', 'mdmlib.paths', 'mdmlib.runtime', 'mdmlib.runtime.allocator', "
                           "'mdmlib.runtime.logs']")


def test_rules_spell_no_result_path_themselves():
    """Every path under the run folder comes from mdmlib.paths."""
    for smk in sorted((REPO / "rules").glob("*.smk")):
        text = smk.read_text()
        assert not re.search(r"\{OUT\}/|results/", text), smk.name
