"""The conda environment for cluster users lists exactly the packages of pyproject.toml."""
from __future__ import annotations

import tomllib
import yaml
from conftest import REPO


def pyproject_requirements() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {req.replace(" ", "") for req in project["dependencies"]}


def conda_pip_requirements() -> set[str]:
    env = yaml.safe_load((REPO / "envs" / "mdm.yaml").read_text())
    pip = next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict) and "pip" in dep)
    return {req.replace(" ", "") for req in pip if not req.startswith("-e")}


def test_conda_environment_matches_pyproject():
    assert conda_pip_requirements() == pyproject_requirements()


def test_torch_and_snakemake_are_pinned_as_the_users_asked():
    reqs = pyproject_requirements()
    assert {"torch==2.14.1", "torchvision==0.29.1", "snakemake>=9.21.1,<10"} <= reqs
    names = {r.split("=")[0].split(">")[0].split("<")[0] for r in reqs}
    assert {"clean-fid", "pandas", "matplotlib", "seaborn", "scikit-learn", "pytest"} <= names
