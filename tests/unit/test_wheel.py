"""A non-editable install of the wheel carries every sub-package and finds its scenarios.

The wheel is built from a copy of the project (so the checkout gets no build/ or egg-info), and
installed with ``pip install --no-deps`` into a fresh venv whose only view of the host-side
dependencies (click, rich, docker, toxiproxy) is a ``.pth`` line naming .venv's site-packages.
A ``.pth`` line only appends that folder to sys.path: the ``.pth`` files inside it, among them
the editable install's finder that maps ``lab`` to this checkout, are not run. Then ``lab list
--json`` runs from a temporary folder with no PYTHONPATH, and its scenario files must come from
the new venv's site-packages, not from the checkout.

Nothing here needs the network when .venv's setuptools meets pyproject.toml's build
requirement (the build then runs with ``--no-build-isolation``). Otherwise pip builds in its
usual isolated environment, which fetches setuptools from the package index; without one the
test is skipped, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
# What the build reads: the package and the files pyproject.toml names (readme, license).
PROJECT_FILES = ("pyproject.toml", "README.md", "LICENSE")
_NO_INDEX = ("Could not find a version that satisfies", "No matching distribution", "NewConnectionError",
             "Failed to establish a new connection", "Temporary failure in name resolution", "Network is unreachable")


def _run(argv: list[str | Path], *, timeout: float, cwd: Path, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _clean_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "LAB_"))}
    env["HOME"] = str(tmp)  # no user site-packages, no ~/.config settings of ours
    return env


def _backend_is_installed() -> bool:
    """Whether this interpreter already has what pyproject.toml's [build-system] requires."""
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    for text in requires:
        req = Requirement(text)
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            return False
        if not req.specifier.contains(version, prereleases=True):
            return False
    return True


def _copy_project(dest: Path) -> Path:
    dest.mkdir()
    for name in PROJECT_FILES:
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "lab", dest / "lab", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
    return dest


def _build_wheel(source: Path, out: Path, env: dict[str, str]) -> Path:
    argv: list[str | Path] = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", out]
    isolated = not _backend_is_installed()
    if not isolated:
        argv.append("--no-build-isolation")
    result = _run([*argv, source], timeout=300, cwd=source, env=env)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        if isolated and any(hint in output for hint in _NO_INDEX):
            pytest.skip("this venv's setuptools is older than pyproject.toml's build requirement and no package "
                        "index answered to provide a newer one for pip's build isolation")
        pytest.fail(f"pip wheel failed ({result.returncode}):\n{output[-4000:]}")
    wheels = list(out.glob("socket_failure_lab-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {out}; got {wheels}"
    return wheels[0]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_an_installed_wheel_has_every_module_and_lists_every_scenario(tmp_path: Path) -> None:
    env = _clean_env(tmp_path)
    source = _copy_project(tmp_path / "project")
    wheel = _build_wheel(source, tmp_path / "dist", env)

    # Every .py file of the package is in the wheel: packages.find's include = ["lab*"] misses no sub-package.
    with zipfile.ZipFile(wheel) as zf:
        in_wheel = {name for name in zf.namelist() if name.endswith(".py")}
    in_tree = {p.relative_to(source).as_posix() for p in (source / "lab").rglob("*.py")}
    assert not in_tree - in_wheel, f"missing from the wheel: {sorted(in_tree - in_wheel)}"
    assert all(name.startswith("lab/") for name in in_wheel), sorted(n for n in in_wheel if not n.startswith("lab/"))
    scenario_files = sorted(p for p in (source / "lab" / "scenarios").glob("*.py") if not p.name.startswith("_"))
    assert len(scenario_files) >= 20

    # A venv of its own; .venv's site-packages only as a source of the dependencies, behind its own.
    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", venv], timeout=120, cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                        timeout=60, cwd=tmp_path, env=env).stdout.strip())
    assert purelib.is_dir(), purelib
    (purelib / "_host_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    installed = _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
                      "--quiet", wheel], timeout=300, cwd=tmp_path, env=env)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    # The checkout is not on sys.path; lab comes from the new site-packages.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = _run([python, "-c", "import json, sys, lab; print(json.dumps({'file': lab.__file__, 'path': sys.path}))"],
                 timeout=60, cwd=elsewhere, env=env)
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout)
    assert Path(seen["file"]).resolve().is_relative_to(purelib.resolve()), seen["file"]
    assert ROOT not in {(elsewhere / p).resolve() for p in seen["path"]}, seen["path"]

    listed = _run([venv / "bin" / "lab", "list", "--json"], timeout=120, cwd=elsewhere, env=env)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    rows = json.loads(listed.stdout)
    assert sorted(r["name"] for r in rows) == sorted(p.stem.replace("_", "-") for p in scenario_files)
    assert len(rows) == len(scenario_files)
    for row in rows:
        file = Path(row["file"]).resolve()
        assert file.is_relative_to(purelib.resolve() / "lab" / "scenarios"), f"{row['name']}: {file}"
        assert not file.is_relative_to(ROOT), f"{row['name']} was found in the checkout: {file}"
