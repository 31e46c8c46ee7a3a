"""The conda environment and pyproject.toml must name the same dependencies."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _names(requirements) -> dict[str, str]:
    out = {}
    for req in requirements:
        name = re.split(r"[<>=!~\[ ]", req, maxsplit=1)[0].strip().lower().replace("_", "-")
        out[name] = req.replace(" ", "")
    return out


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += extra
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda_pip = [r for r in pip_section if not r.startswith("-e")]
    assert _names(conda_pip) == _names(declared)


def test_console_script_points_at_cli():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["afme"] == "afme_lib.interfaces.cli:main"
    from afme_lib.interfaces.cli import main  # noqa: F401  (the entry point imports)
