"""The built wheel, installed into a fresh virtual environment, runs outside the checkout: from an empty directory
with PLANCHECK_HOME unset it uses the rules and plans it carries, and after `plancheck init . --samples` it runs
the README's commands as written.

The wheel is built offline (--no-build-isolation, the test extra's setuptools) from a copy of the checkout's build
inputs; the fresh environment reaches the running one's dependencies through a .pth line instead of downloading
them, and gets plancheck from the wheel alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from helpers import ROOT, plancheck
from plancheck import __version__

pytestmark = pytest.mark.slow

BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "src", "rules", "plans", "samples")
BUNDLED = ("rules", "plans", "samples")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """plancheck's wheel, built from a copy of the build inputs (the checkout gets no build/ or egg-info)."""
    work = tmp_path_factory.mktemp("build")
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, work / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.py[co]", "*.egg-info", "_bundled"))
        else:
            shutil.copy2(ROOT / name, work / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "--wheel-dir", str(work / "dist"), str(work)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = (work / "dist").glob("plancheck-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding the wheel; the running environment's site-packages reach it by a .pth line (its
    editable plancheck does not: a .pth inside a directory added that way is not read)."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    site = Path(subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    outer = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "_outer_site_packages.pth").write_text("".join(f"{path}\n" for path in outer))
    installed = subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
                                "--quiet", str(wheel)], capture_output=True, text=True, timeout=300, env=clean_env(root))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return root


def clean_env(home: Path, venv: Path | None = None) -> dict[str, str]:
    """The environment of a user who installed the wheel: no checkout on the path, no PLANCHECK_HOME or database."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PLANCHECK_HOME", "PLANCHECK_DB")}
    env["HOME"] = str(home)
    if venv is not None:
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def run(venv: Path, cwd: Path, command: str) -> subprocess.CompletedProcess:
    """`command` (a shell line starting with `plancheck`) run by the installed script, from `cwd`."""
    return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=clean_env(cwd, venv))


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_the_wheel_carries_the_rules_plans_and_samples(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for kind in BUNDLED:
        prefix = f"plancheck/_bundled/{kind}/"
        assert {n[len(prefix):] for n in names if n.startswith(prefix)} == files_under(ROOT / kind)


def test_the_installed_plancheck_is_the_wheels_and_finds_its_bundled_rules(venv, tmp_path):
    shown = run(venv, tmp_path, "python -c 'import plancheck, plancheck.rulebook.resources as r; "
                                "print(plancheck.__file__); print(*r.locate(\"rules\"))'")
    module, rules = shown.stdout.splitlines()
    assert module.startswith(str(venv)) and rules.endswith("plancheck/_bundled/rules bundled"), shown.stderr
    version = run(venv, tmp_path, "plancheck --version")
    assert (version.returncode, version.stdout) == (0, f"plancheck {__version__}\n")


def test_from_an_empty_directory_audit_election_and_batch_run_on_the_bundled_rules(venv, tmp_path):
    """The same answers as the checkout gives (the ruleset revision is a hash of the rules: it must match too)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    audit = run(venv, empty, "plancheck audit --format text")
    assert audit.returncode == 0, audit.stderr
    plans = len(list((ROOT / "plans").glob("*.yaml")))
    summary = audit.stdout.splitlines()[-1]
    assert summary.startswith(f"{plans} plan(s) audited: ")
    assert summary == plancheck("audit", "--format", "text").stdout.splitlines()[-1]
    election_args = f"{ROOT}/samples/elections/acme-high-earner-2026.yaml --plan {ROOT}/plans/acme-mega-backdoor.yaml"
    election = run(venv, empty, f"plancheck election {election_args}")
    expected = plancheck("election", *election_args.split())
    assert (election.returncode, election.stdout) == (expected.returncode, expected.stdout), election.stderr
    batch = run(venv, empty, f"plancheck batch {ROOT}/samples/payroll-2026.csv --out findings.jsonl")
    assert batch.returncode == 1, batch.stderr  # the sample feed has error findings
    checkout = plancheck("batch", ROOT / "samples" / "payroll-2026.csv", "--out", tmp_path / "checkout.jsonl",
                         "--rejects", tmp_path / "checkout.rejects.csv", cwd=tmp_path)
    assert checkout.returncode == 1
    findings = lambda path: [e for e in map(json.loads, path.read_text().splitlines())  # noqa: E731
                             if e["event"] != "batch_summary"]
    assert findings(empty / "findings.jsonl") == findings(tmp_path / "checkout.jsonl") != []
    assert (empty / "payroll-2026.rejects.csv").read_bytes() == (tmp_path / "checkout.rejects.csv").read_bytes()
    assert sorted(p.name for p in empty.iterdir()) == ["findings.jsonl", "payroll-2026.rejects.csv"]


def readme_commands() -> list[str]:
    """The command lines of the README's "The three jobs" block, with `plancheck` for `.venv/bin/plancheck`."""
    readme = ROOT.joinpath("README.md").read_text()
    assert "## The three jobs" in readme, "README.md has no 'The three jobs' section: point this test at its commands"
    block = readme.split("## The three jobs", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.replace(".venv/bin/plancheck", "plancheck", 1) for line in block.splitlines()
            if line.startswith(".venv/bin/plancheck")]


def test_the_readme_commands_run_as_written_in_a_directory_made_by_init(venv, tmp_path):
    """`plancheck init . --samples`, then each README command (but `serve`, which runs until stopped: the service
    tests start it) exits 0 or 1, never 2, with no traceback."""
    init = run(venv, tmp_path, "plancheck init . --samples")
    assert init.returncode == 0, init.stderr
    assert "a copy of the bundled rules/" in init.stdout
    (tmp_path / "schema").mkdir()  # the README's schema command writes into the repository's schema/
    commands = [c for c in readme_commands() if not c.startswith("plancheck serve")]
    assert len(commands) >= 6, commands
    for command in commands:
        result = run(venv, tmp_path, command)
        assert result.returncode in (0, 1) and "Traceback" not in result.stderr, (command, result.stderr)
