"""Where the rules and plans come from (--rules-dir/--plans > PLANCHECK_HOME > the checkout > the bundled copy),
`plancheck init`, and the command line's --version, -h and shell completion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, plancheck
from plancheck import __version__
from plancheck.errors import InputError
from plancheck.rulebook import resources


@pytest.fixture()
def no_home(monkeypatch):
    monkeypatch.delenv("PLANCHECK_HOME", raising=False)


def test_in_the_checkout_the_rules_and_plans_are_the_checkouts(no_home):
    """Run from the repository (as the editable install does), the defaults are its own rules/ and plans/."""
    assert resources.locate("rules") == (ROOT / "rules", "checkout")
    assert resources.locate("plans") == (ROOT / "plans", "checkout")


def test_plancheck_home_comes_before_the_checkout(tmp_path, monkeypatch):
    """PLANCHECK_HOME=DIR: DIR/rules and DIR/plans, although the checkout has its own."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "plans").mkdir()
    monkeypatch.setenv("PLANCHECK_HOME", str(tmp_path))
    assert resources.locate("rules") == (tmp_path / "rules", "PLANCHECK_HOME")
    assert resources.locate("plans") == (tmp_path / "plans", "PLANCHECK_HOME")


def test_an_empty_plancheck_home_counts_as_unset(monkeypatch):
    monkeypatch.setenv("PLANCHECK_HOME", "")
    assert resources.locate("rules") == (ROOT / "rules", "checkout")


def test_a_plancheck_home_without_the_directory_is_an_error_not_a_fall_back(tmp_path, monkeypatch):
    """A mistyped home must not quietly check payroll against the sample plans: exit 2 naming the home."""
    (tmp_path / "rules").mkdir()
    monkeypatch.setenv("PLANCHECK_HOME", str(tmp_path))
    with pytest.raises(InputError, match="no plans/ directory there"):
        resources.locate("plans")
    result = plancheck("audit", "--format", "text")
    assert result.returncode == 2
    assert result.stderr == f"error: PLANCHECK_HOME={tmp_path}: no plans/ directory there (`plancheck init {tmp_path}` " \
                            "writes a starter rules/ and plans/)\n"


def test_the_checkout_comes_before_the_bundled_copy_and_the_bundled_copy_after_it(tmp_path, monkeypatch, no_home):
    """A built checkout (build/ or an old _bundled) still reads the files being edited; an installed wheel, its own."""
    bundled = tmp_path / "_bundled"
    (bundled / "rules").mkdir(parents=True)
    monkeypatch.setattr(resources, "bundled_root", lambda: bundled)
    assert resources.locate("rules") == (ROOT / "rules", "checkout")
    monkeypatch.setattr(resources, "checkout_root", lambda: None)
    assert resources.locate("rules") == (bundled / "rules", "bundled")
    with pytest.raises(InputError, match="this installation has no plans/ directory"):
        resources.locate("plans")


def test_an_installed_package_is_not_taken_for_a_checkout(tmp_path, monkeypatch):
    """site-packages/plancheck inside a directory that happens to hold rules/ (a venv in a checkout) is no checkout:
    only src/plancheck beside rules/ is."""
    fake = tmp_path / "lib" / "site-packages" / "plancheck" / "rulebook" / "resources.py"
    (tmp_path / "rules" / "limits").mkdir(parents=True)
    monkeypatch.setattr(resources, "_HERE", fake)
    assert resources.checkout_root() is None
    src = tmp_path / "src" / "plancheck" / "rulebook" / "resources.py"
    monkeypatch.setattr(resources, "_HERE", src)
    assert resources.checkout_root() == tmp_path


def test_options_come_before_plancheck_home(tmp_path, monkeypatch):
    """PLANCHECK_HOME's plans are audited; --rules-dir and a plan argument still win over it."""
    assert plancheck("init", tmp_path / "home").returncode == 0
    for plan in (tmp_path / "home" / "plans").iterdir():
        if plan.name != "bayside-safe-harbor.yaml":
            plan.unlink()
    monkeypatch.setenv("PLANCHECK_HOME", str(tmp_path / "home"))
    from_home = plancheck("audit", "--format", "text", cwd=tmp_path)
    assert from_home.returncode == 0, from_home.stderr
    assert from_home.stdout.startswith("home/plans/bayside-safe-harbor.yaml (bayside-safe-harbor)")
    assert "\n1 plan(s) audited: " in from_home.stdout
    assert plancheck("init", tmp_path / "broken").returncode == 0  # a new path: load_rules caches by directory
    (tmp_path / "broken" / "rules" / "limits" / "compensation_limit.yaml").unlink()
    monkeypatch.setenv("PLANCHECK_HOME", str(tmp_path / "broken"))
    broken = plancheck("audit", "--format", "text", cwd=tmp_path)
    assert broken.returncode == 2 and "compensation_limit" in broken.stderr
    given = plancheck("audit", ROOT / "plans", "--rules-dir", ROOT / "rules", "--format", "text", cwd=tmp_path)
    assert given.returncode == 0, given.stderr
    assert f"\n{len(list((ROOT / 'plans').glob('*.yaml')))} plan(s) audited: " in given.stdout


# plancheck init


def files_under(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_init_writes_copies_of_the_rules_and_plans_and_says_how_to_use_them(tmp_path, no_home):
    home = tmp_path / "new" / "home"
    result = plancheck("init", home)
    assert result.returncode == 0, result.stderr
    assert files_under(home / "rules") == files_under(ROOT / "rules")
    assert files_under(home / "plans") == files_under(ROOT / "plans")
    assert not (home / "samples").exists()
    assert result.stdout.splitlines()[:2] == [
        f"wrote {home}/rules/ ({len(files_under(ROOT / 'rules'))} files, a copy of the checkout rules/)",
        f"wrote {home}/plans/ ({len(files_under(ROOT / 'plans'))} files, a copy of the checkout plans/)"]
    assert f"export PLANCHECK_HOME={home}\n" in result.stdout
    assert f"--rules-dir {home}/rules --plans {home}/plans" in result.stdout
    assert sorted(p.name for p in home.iterdir()) == ["plans", "rules"]  # no staging directory left behind


def test_init_with_samples_also_writes_the_readme_samples(tmp_path, no_home):
    result = plancheck("init", tmp_path, "--samples")
    assert result.returncode == 0, result.stderr
    assert files_under(tmp_path / "samples") == files_under(ROOT / "samples")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plans", "rules", "samples"]


def test_init_copies_are_the_administrators_to_edit(tmp_path, no_home):
    """Files copied from a read-only installation come out writable (the umask's modes, not the package's)."""
    assert plancheck("init", tmp_path).returncode == 0
    plan = tmp_path / "plans" / "acme-mega-backdoor.yaml"
    assert os.access(plan, os.W_OK) and os.access(tmp_path / "rules" / "limits", os.W_OK)


@pytest.mark.parametrize("taken", ["rules", "plans"])
def test_init_never_overwrites_and_writes_nothing_when_a_target_is_taken(tmp_path, no_home, taken):
    """An existing non-empty rules/ or plans/: exit 2, one line, the administrator's file as it was, nothing written."""
    (tmp_path / taken).mkdir()
    (tmp_path / taken / "mine.yaml").write_text("edited by hand\n")
    result = plancheck("init", tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"error: {tmp_path}: {taken}/ already there and not empty: plancheck init never "
                             "overwrites (choose another directory, or move them away)\n")
    assert (tmp_path / taken / "mine.yaml").read_text() == "edited by hand\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [taken]
    assert [p.name for p in (tmp_path / taken).iterdir()] == ["mine.yaml"]


def test_init_fills_empty_directories_and_refuses_a_file_in_the_way(tmp_path, no_home):
    (tmp_path / "rules").mkdir()
    assert plancheck("init", tmp_path).returncode == 0
    assert (tmp_path / "rules" / "limits").is_dir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "plans").write_text("a file, not a directory\n")
    result = plancheck("init", tmp_path / "other")
    assert result.returncode == 2 and "plans/ already there" in result.stderr
    assert (tmp_path / "other" / "plans").read_text() == "a file, not a directory\n"
    afile = tmp_path / "afile"
    afile.write_text("x")
    result = plancheck("init", afile)
    assert result.returncode == 2 and result.stderr == f"error: {afile}: exists and is not a directory\n"


def test_a_home_written_by_init_is_one_plancheck_runs_on(tmp_path, monkeypatch):
    """init DIR, then PLANCHECK_HOME=DIR: the election of the README checks against DIR's rules and plans."""
    assert plancheck("init", tmp_path / "home", "--samples").returncode == 0
    monkeypatch.setenv("PLANCHECK_HOME", str(tmp_path / "home"))
    home_run = plancheck("election", "samples/elections/acme-high-earner-2026.yaml", "--plan",
                         "plans/acme-mega-backdoor.yaml", cwd=tmp_path / "home")
    monkeypatch.delenv("PLANCHECK_HOME")
    checkout_run = plancheck("election", "samples/elections/acme-high-earner-2026.yaml", "--plan",
                             "plans/acme-mega-backdoor.yaml")
    assert (home_run.returncode, home_run.stdout) == (checkout_run.returncode, checkout_run.stdout)
    assert checkout_run.returncode == 1  # the sample breaks a limit: the runs agree on findings, not on nothing


# --version, -h, completion


def test_version_long_and_short():
    for flag in ("--version", "-V"):
        result = plancheck(flag)
        assert (result.returncode, result.stdout, result.stderr) == (0, f"plancheck {__version__}\n", "")


def command_paths() -> list[list[str]]:
    """Every command and subcommand of the command line, as the words that name it."""
    import typer

    from plancheck.cli import app

    def walk(command, path):
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    return list(walk(typer.main.get_command(app), []))


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "plancheck")
def test_dash_h_is_help_on_every_command(path):
    short, long = plancheck(*path, "-h"), plancheck(*path, "--help")
    assert short.returncode == long.returncode == 0
    assert short.stdout == long.stdout and "Usage: plancheck" in short.stdout


def test_help_lists_init_version_and_completion():
    text = plancheck("--help").stdout
    for word in ("init", "--version", "--install-completion", "--show-completion", "PLANCHECK_HOME"):
        assert word in text


def run_module(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "plancheck", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


def test_shell_completion_script_and_answers():
    """--show-completion prints the script for the shell named; the script's request completes commands and options."""
    script = run_module("--show-completion", "bash")
    assert script.returncode == 0 and "_PLANCHECK_COMPLETE=complete_bash" in script.stdout
    commands = run_module(_PLANCHECK_COMPLETE="complete_bash", COMP_WORDS="plancheck ba", COMP_CWORD="1")
    assert commands.stdout.split() == ["batch"]
    options = run_module(_PLANCHECK_COMPLETE="complete_bash", COMP_WORDS="plancheck batch --wo", COMP_CWORD="2")
    assert options.stdout.split() == ["--workers", "--work-dir"]


def test_help_and_completion_load_neither_the_engine_nor_structlog_nor_the_rule_models():
    """--help and each TAB of shell completion start plancheck whole: the command line defers what only a check needs
    (durable-rules, structlog, pydantic's rule models, numpy and pyarrow)."""
    heavy = ("plancheck.engine", "durable_rules_engine", "structlog", "plancheck.rulebook.rules", "numpy", "pyarrow")
    probe = ("import sys, runpy\nsys.argv = ['plancheck', '--help']\ntry:\n    runpy.run_module('plancheck', "
             f"run_name='__main__')\nexcept SystemExit:\n    pass\nprint([m for m in {heavy!r} if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stdout.splitlines()[-1] == "[]", result.stderr


@pytest.mark.parametrize("kind", ["plan", "election"])
def test_schema_loads_neither_the_engine_nor_numpy(kind):
    """`plancheck schema KIND` is an editor's start-up call: it needs the document models only, not the engine,
    structlog or the array libraries (numpy alone cost ~0.1 s of its start)."""
    heavy = ("plancheck.engine", "durable_rules_engine", "structlog", "numpy", "pyarrow")
    probe = ("import sys, runpy, os\nsys.argv = ['plancheck', 'schema', " + repr(kind) + "]\n"
             "sys.stdout = open(os.devnull, 'w')\ntry:\n    runpy.run_module('plancheck', run_name='__main__')\n"
             "except SystemExit:\n    pass\nsys.stdout = sys.__stdout__\n"
             f"print([m for m in {heavy!r} if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stdout.splitlines()[-1] == "[]", result.stderr
