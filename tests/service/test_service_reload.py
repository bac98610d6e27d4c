"""Reloading plans and rules while the service runs: SIGHUP or a file change swaps the whole set; a broken
file keeps the old set and the log says why."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from helpers import eventually, logged_events
from helpers.service_server import running

pytestmark = pytest.mark.slow  # servers reloaded by signals: not in the fast tier (pytest -m 'not slow')


def renamed(plans: Path, plan_id: str, name: str) -> None:
    """Change a plan document's name (a harmless edit that shows in GET /v1/plans)."""
    path = plans / f"{plan_id}.yaml"
    text = path.read_text()
    start = text.index("\nname:")
    end = text.index("\n", start + 1)
    path.write_text(text[:start] + f"\nname: {name}" + text[end:])


def plan_names(client: httpx.Client) -> dict[str, str]:
    return {p["plan_id"]: p["name"] for p in client.get("/v1/plans").json()["plans"]}


def test_a_file_change_swaps_the_set_and_a_broken_file_keeps_the_old_one(dirs):
    rules, plans = dirs
    with running(rules, plans, watch_interval=0.1) as (url, log), httpx.Client(base_url=url) as client:
        revision = client.get("/v1/revision").json()["ruleset_revision"]
        renamed(plans, "monthly-mega-backdoor", "Renamed Plan")
        eventually(lambda: plan_names(client)["monthly-mega-backdoor"] == "Renamed Plan")
        (plans / "broken.yaml").write_text("plan_id: broken\nname: Broken\npayroll: {frequency: fortnightly}\n")
        failed = eventually(lambda: [e for e in log.events() if e["event"] == "reload_failed"])
        assert "payroll.frequency" in " ".join(failed[-1]["problems"])
        assert failed[-1]["kept_revision"] == revision
        assert plan_names(client)["monthly-mega-backdoor"] == "Renamed Plan"  # the old set still serves
        assert "broken" not in plan_names(client)
        (plans / "broken.yaml").unlink()
        with (rules / "checks" / "period" / "415c-annual-additions.yaml").open("a") as handle:
            handle.write("# edited\n")
        eventually(lambda: client.get("/v1/revision").json()["ruleset_revision"] != revision)
        triggers = [e["trigger"] for e in log.events() if e["event"] == "rules_loaded"]
        assert triggers[0] == "start" and "file change" in triggers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_reloads_and_a_broken_file_keeps_the_old_set(dirs, tmp_path):
    rules, plans = dirs
    port = _free_port()
    log = (tmp_path / "service.log").open("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "plancheck", "serve", "--plans", str(plans), "--rules-dir", str(rules),
         "--port", str(port), "--watch", "0"], stdout=subprocess.DEVNULL, stderr=log, cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        events = lambda: logged_events(tmp_path / "service.log")  # noqa: E731
        eventually(lambda: any(e["event"] == "listening" for e in events()), 30)
        process.send_signal(signal.SIGHUP)  # before the app handles it: ignored, not fatal
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            def up():
                try:
                    return client.get("/readyz").status_code == 200
                except httpx.TransportError:
                    assert process.poll() is None, (tmp_path / "service.log").read_text()
                    return False
            eventually(up, 30)
            renamed(plans, "acme-mega-backdoor", "After SIGHUP")
            time.sleep(0.3)
            assert plan_names(client)["acme-mega-backdoor"] != "After SIGHUP"  # no watcher: nothing yet
            process.send_signal(signal.SIGHUP)
            eventually(lambda: plan_names(client)["acme-mega-backdoor"] == "After SIGHUP")
            (plans / "acme-mega-backdoor.yaml").write_text("plan_id: [not, a, string]\n")
            process.send_signal(signal.SIGHUP)
            eventually(lambda: any(e["event"] == "reload_failed" for e in events()))
            assert plan_names(client)["acme-mega-backdoor"] == "After SIGHUP"
            assert process.poll() is None
    finally:
        process.terminate()
        process.wait(10)
        log.close()
