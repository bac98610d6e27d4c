"""`plancheck serve --workers 2`: worker processes sharing one socket, each holding the token rule, each
reloaded by a SIGHUP sent to the supervisor, replaced when one dies, all stopped with the supervisor."""

from __future__ import annotations

import os
import signal
import time
from functools import partial
from pathlib import Path

import pytest

from helpers import eventually
from helpers.service_server import Served

pytestmark = [pytest.mark.slow,  # multi-process servers started and stopped: not in the fast tier (pytest -m 'not slow')
              pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")]
TOKEN = "workers-test-token-0123456789abcdef"
SEED = {"plan_id": "monthly-mega-backdoor",
        "employee": {"id": "E-1001", "birth_date": "1979-06-15", "compensation": {"annual": 150000},
                     "prior_year_fica_wages": 140000, "year_to_date": {"pretax": 21000, "employer_match": 1375}},
        "election": {"start_date": "2024-12-01", "pretax": {"amount": 2000}}}


def Service(tmp_path: Path, *args: str) -> Served:
    """`plancheck serve --workers 2` on a free loopback port (workers start in fresh interpreters, each building
    its engine: twice the usual wait)."""
    return Served(tmp_path, *args, workers=2, wait=30.0)


#: Workers start in fresh interpreters, each building its engine: give them twice the usual wait.
eventually = partial(eventually, seconds=30.0)


def served_by(service: Served, status: int) -> set[int]:
    return {e["pid"] for e in service.find("request") if e["route"] == "/v1/elections/check" and e["status"] == status}


def test_every_worker_holds_the_token_rule_and_answers_the_seed_example(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    service = Service(tmp_path, "--host", "127.0.0.1", "--token-file", str(token_file))
    try:
        good = {"Authorization": f"Bearer {TOKEN}"}
        for _round in range(10):  # until each worker has taken some of each (which accepts is up to the kernel)
            refused = service.spread(lambda c: c.post("/v1/elections/check", json=SEED))
            assert {r.status_code for r in refused} == {401}
            answers = service.spread(lambda c: c.post("/v1/elections/check", json=SEED, headers=good))
            assert {r.json()["summary"]["after_tax_room"]["year"] for r in answers} == {"44500.00"}
            time.sleep(0.1)
            if served_by(service, 401) == served_by(service, 200) == set(service.workers):
                break
        assert served_by(service, 401) == served_by(service, 200) == set(service.workers)
        assert service.spread(lambda c: c.get("/healthz"), 16)[0].status_code == 200
    finally:
        status = service.stop()
    assert status == 128 + signal.SIGTERM
    for pid in service.workers:  # the workers went with the supervisor
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_no_token_refuses_to_bind_beyond_loopback_with_workers_too():
    from plancheck.cli import run
    assert run(["serve", "--host", "0.0.0.0", "--port", "0", "--workers", "2"]) == 2


def test_sighup_to_the_supervisor_reloads_every_worker(tmp_path, dirs):
    rules, plans = dirs
    service = Service(tmp_path, "--plans", str(plans), "--rules-dir", str(rules))
    try:
        path = plans / "monthly-mega-backdoor.yaml"
        path.write_text(path.read_text().replace("\nname:", "\nname: After SIGHUP #", 1))
        service.process.send_signal(signal.SIGHUP)
        reloaded = eventually(lambda: {e["pid"] for e in service.find("rules_loaded") if e["trigger"] == "SIGHUP"}
                              >= set(service.workers))
        assert reloaded
        names = service.spread(lambda c: c.get("/v1/plans/monthly-mega-backdoor").json()["name"], 60)
        assert all(name.startswith("After SIGHUP") for name in names)
        path.write_text("plan_id: [not, a, string]\n")  # broken: every worker keeps its set and says why
        service.process.send_signal(signal.SIGHUP)
        eventually(lambda: {e["pid"] for e in service.find("reload_failed")} >= set(service.workers))
        names = service.spread(lambda c: c.get("/v1/plans/monthly-mega-backdoor").json()["name"], 20)
        assert all(name.startswith("After SIGHUP") for name in names)
    finally:
        assert service.stop() == 128 + signal.SIGTERM


def test_a_worker_that_dies_is_replaced(tmp_path):
    service = Service(tmp_path)
    try:
        victim = service.workers[0]
        os.kill(victim, signal.SIGKILL)
        exited = eventually(lambda: service.find("worker_exited"))
        assert exited[0]["worker"] == victim and exited[0]["exitcode"] == -signal.SIGKILL
        service.process.send_signal(signal.SIGHUP)  # while the new worker starts: held back, not fatal to it
        eventually(lambda: len({e["pid"] for e in service.find("rules_loaded")}) == 3)
        time.sleep(0.5)
        assert len(service.find("worker_exited")) == 1
        answers = service.spread(lambda c: c.post("/v1/elections/check", json=SEED), 16)
        assert {r.status_code for r in answers} == {200}
    finally:
        assert service.stop() == 128 + signal.SIGTERM
