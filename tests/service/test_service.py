"""The HTTP service, driven over a real loopback socket with httpx: answers, errors, access, events."""

from __future__ import annotations

import hmac
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from helpers import ROOT
from helpers.service_server import running

TOKEN = "s3cret-token-for-tests-0123456789"
SEED = ROOT / "samples" / "elections" / "seed-mega-backdoor-2024.yaml"


def document(path: Path) -> dict:
    """A YAML sample as the JSON an HR system would post (dates as text)."""
    return json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))


@pytest.fixture(scope="module")
def service():
    with running(ROOT / "rules", ROOT / "plans", watch_interval=None) as (url, log):
        with httpx.Client(base_url=url, timeout=30) as client:
            yield client, log


@pytest.fixture(scope="module")
def guarded():
    with running(ROOT / "rules", ROOT / "plans", watch_interval=None, token=TOKEN.encode()) as (url, log):
        with httpx.Client(base_url=url, timeout=30) as client:
            yield client, log


def test_seed_example_answers_44500_of_after_tax_room(service):
    client, _ = service
    response = client.post("/v1/elections/check", json=document(SEED))
    assert response.status_code == 200
    answer = response.json()
    room = answer["summary"]["after_tax_room"]
    assert room["year"] == "44500.00" and room["annual_additions_limit"] == "69000.00"
    assert answer["summary"]["year_end"]["deferrals"] == "23000.00"
    assert answer["summary"]["year_end"]["employer_match"] == "1500.00"
    assert answer["findings"] == [] and answer["nearest_compliant"] is None
    assert response.headers["x-request-id"]


def test_election_findings_are_the_cli_events(service, tmp_path):
    client, _ = service
    election = document(ROOT / "samples" / "elections" / "acme-high-earner-2026.yaml")
    answer = client.post("/v1/elections/check", json=election).json()
    out = tmp_path / "cli.jsonl"
    subprocess.run([sys.executable, "-m", "plancheck", "election",
                    str(ROOT / "samples" / "elections" / "acme-high-earner-2026.yaml"),
                    "--plan", str(ROOT / "plans" / "acme-mega-backdoor.yaml"), "--out", str(out)],
                   capture_output=True, cwd=ROOT, check=False)
    cli = [json.loads(line) for line in out.read_text().splitlines()]
    cli_findings = [{k: v for k, v in e.items() if k != "ruleset_revision"} for e in cli if e["event"] != "election_checked"]
    assert answer["findings"] == cli_findings
    assert answer["summary"]["after_tax_room"] == cli[-1]["after_tax_room"]


def test_422_problem_names_each_field_as_the_cli_does(service):
    client, _ = service
    election = document(SEED)
    election["employee"]["birth_date"] = "1979-02-30"
    election["election"]["pretax"] = {"amount": "12.345"}
    election["employee"]["shoe_size"] = 9
    response = client.post("/v1/elections/check", json=election)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 422 and problem["title"] and problem["type"]
    fields = {e["field"]: e for e in problem["errors"]}
    assert set(fields) == {"employee.birth_date", "election.pretax.amount", "employee.shoe_size"}
    assert "two decimals" in fields["election.pretax.amount"]["expected"]
    assert fields["election.pretax.amount"]["got"] == "'12.345'"
    assert "unknown key" in fields["employee.shoe_size"]["expected"]


@pytest.mark.parametrize("body, field", [
    (b"{not json", ""), (b"[" * 5000 + b"]" * 5000, ""), (b"", ""), (b"\xff\xfe", ""), (b"[1, 2]", ""),
    (json.dumps({"employee": {}}).encode(), "election"),
])
def test_malformed_bodies_are_422_and_the_worker_lives(service, body, field):
    client, _ = service
    response = client.post("/v1/elections/check", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] in (field, "employee.id") or field == ""
    assert client.get("/healthz").status_code == 200


def test_missing_plan_id_is_422_naming_it(service):
    client, _ = service
    election = document(SEED)
    del election["plan_id"]
    problem = client.post("/v1/elections/check", json=election).json()
    assert problem["status"] == 422 and problem["errors"][0]["field"] == "plan_id"
    ok = client.post("/v1/elections/check", json=election, params={"plan_id": "monthly-mega-backdoor"})
    assert ok.json()["summary"]["after_tax_room"]["year"] == "44500.00"


def test_oversized_body_is_413(service):
    client, _ = service
    election = document(SEED)
    election["employee"]["id"] = "E" * 300_000
    response = client.post("/v1/elections/check", json=election)
    assert response.status_code == 413
    assert response.json()["max_bytes"] == 256 * 1024

    def chunks():  # no Content-Length: the limit is counted as the body streams in
        for _ in range(100):
            yield b" " * 10_000
    assert client.post("/v1/elections/check", content=chunks()).status_code == 413


def test_unknown_plan_is_404(service):
    client, _ = service
    election = document(SEED) | {"plan_id": "no-such-plan"}
    response = client.post("/v1/elections/check", json=election)
    assert response.status_code == 404 and response.json()["type"].endswith("unknown-plan")
    assert client.get("/v1/plans/no-such-plan").status_code == 404


def test_lists_plans_rules_and_revision(service):
    client, _ = service
    plans = client.get("/v1/plans").json()["plans"]
    assert "monthly-mega-backdoor" in {p["plan_id"] for p in plans}
    rules = client.get("/v1/rules").json()
    assert all(r["citation"] for r in rules["rules"]) and len(rules["rules"]) > 10
    revision = client.get("/v1/revision").json()
    assert revision["ruleset_revision"] == rules["ruleset_revision"]
    assert client.get("/readyz").json()["ruleset_revision"] == revision["ruleset_revision"]
    plan = client.get("/v1/plans/monthly-mega-backdoor").json()
    assert plan["document"]["plan_id"] == "monthly-mega-backdoor"


def test_a_plans_document_is_given_in_its_own_units_and_can_be_audited_back(service):
    client, _ = service
    document = client.get("/v1/plans/acme-mega-backdoor").json()["document"]
    assert document["contributions"]["max_deferral_percent"] == 75  # percent, not parts per million
    assert document == json.loads(json.dumps(yaml.safe_load((ROOT / "plans" / "acme-mega-backdoor.yaml").read_text()),
                                             default=str))
    audited = client.post("/v1/plans/audit", json=document)
    assert audited.status_code == 200 and audited.json()["summary"]["plan_id"] == "acme-mega-backdoor"


def test_withdrawals_are_checked_or_rejected_each(service):
    client, _ = service
    requests = yaml.safe_load((ROOT / "samples" / "withdrawals.yaml").read_text())
    requests = json.loads(json.dumps(requests, default=str))
    items = requests["requests"] if isinstance(requests, dict) else requests
    bad = {**items[0], "amount": "-5", "request_id": "BAD"}
    answer = client.post("/v1/withdrawals/check", json={"requests": [*items, bad]}).json()
    summary = answer["summary"]
    assert summary["requests_read"] == len(items) + 1
    assert summary["requests_checked"] + summary["requests_rejected"] == summary["requests_read"]
    assert any("amount" in r["reason"] for r in answer["rejected"])
    assert answer["findings"] and all(f["request_id"] for f in answer["findings"])


def test_posted_plan_is_audited(service):
    client, _ = service
    plan = document(ROOT / "plans" / "monthly-mega-backdoor.yaml")
    answer = client.post("/v1/plans/audit", json=plan).json()
    assert answer["summary"]["plan_id"] == "monthly-mega-backdoor"
    assert answer["summary"]["mega_backdoor"] == "ready"
    broken = plan | {"payroll": {"frequency": "fortnightly"}}
    problem = client.post("/v1/plans/audit", json=broken).json()
    assert problem["status"] == 422 and problem["errors"][0]["field"] == "payroll.frequency"


def test_token_required_everywhere_but_health(guarded):
    client, _ = guarded
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                    {"Authorization": f"Basic {TOKEN}"}):
        response = client.post("/v1/elections/check", json=document(SEED), headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
        assert client.get("/v1/plans", headers=headers).status_code == 401
    assert client.get("/openapi.json").status_code == 401
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/openapi.json", headers=good).status_code == 200
    assert client.post("/v1/elections/check", json=document(SEED), headers=good).status_code == 200
    assert client.get("/v1/rules", headers=good).status_code == 200


def test_token_is_compared_in_constant_time(guarded, monkeypatch):
    client, _ = guarded
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)
    monkeypatch.setattr("plancheck.service.endpoints.hmac.compare_digest", spy)
    client.get("/v1/revision", headers={"Authorization": "Bearer nope"})
    assert calls == [(b"nope", TOKEN.encode())]


def test_every_decision_is_an_event_without_personal_figures(service):
    client, log = service
    election = document(ROOT / "samples" / "elections" / "acme-high-earner-2026.yaml")
    response = client.post("/v1/elections/check", json=election, headers={"X-Request-ID": "hr-42"})
    assert response.headers["x-request-id"] == "hr-42"
    rules = sorted({f["rule"] for f in response.json()["findings"]})
    event = next(e for e in log.events() if e.get("request_id") == "hr-42")
    assert event["event"] == "request" and event["status"] == 200
    assert event["rules"] == rules and event["ruleset_revision"]
    assert isinstance(event["latency_ms"], float)
    text = log.getvalue()
    assert election["employee"]["birth_date"] not in text
    assert str(election["employee"]["compensation"]["annual"]) not in text


def test_no_token_refuses_to_bind_beyond_loopback(tmp_path):
    from plancheck.cli import run
    assert run(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    short = tmp_path / "token"
    short.write_text("short")
    assert run(["serve", "--host", "0.0.0.0", "--port", "0", "--token-file", str(short)]) == 2


def test_loopback_names():
    from plancheck.service.run import is_loopback
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.0.0.1", "::", "example.com"))


def test_committed_openapi_document_is_the_served_one(service):
    client, _ = service
    served = client.get("/openapi.json").json()
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert served == committed, "regenerate: python -m plancheck.service.openapi > docs/openapi.json"
    election = committed["components"]["schemas"]["ElectionFile"]
    assert set(election["properties"]) == {"plan_id", "employee", "election"}
    body = committed["paths"]["/v1/elections/check"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/ElectionFile"


def test_openapi_declares_the_bearer_token_on_every_api_endpoint_and_not_on_health(service):
    """A client generated from the document sends the token: the scheme is declared, and asked of each /v1 operation."""
    client, _ = service
    document = client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearerToken"] == {
        "type": "http", "scheme": "bearer", "description": document["components"]["securitySchemes"]["bearerToken"]["description"]}
    for path, operations in document["paths"].items():
        for operation in operations.values():
            expected = [{"bearerToken": []}] if path.startswith("/v1/") else None
            assert operation.get("security") == expected, path


def test_an_election_with_findings_gets_the_nearest_compliant_one(service):
    client, _ = service
    election = {"plan_id": "monthly-mega-backdoor",
                "employee": {"id": "E-9", "birth_date": "1970-03-01", "compensation": {"annual": 240000},
                             "prior_year_fica_wages": 200000},
                "election": {"start_date": "2026-01-01", "pretax": {"amount": 2500}}}
    answer = client.post("/v1/elections/check", json=election).json()
    assert "roth-catch-up-required" in {f["rule"] for f in answer["findings"]}
    nearest = answer["nearest_compliant"]
    assert nearest["found"] and "roth-catch-up-required" in nearest["repairs"]
    assert nearest["changes"]["roth"] == {"asked": "0.00", "proposed": "5500.00"}
    assert not [f for f in nearest["findings"] if f["severity"] == "error"]


def test_a_percent_election_gets_its_nearest_compliant_one_in_percent(service):
    # Age 40 in 2024, $9,000 a month, 25% pretax: November has $500 of the $23,000 left, 5% in whole percent.
    election = {"plan_id": "monthly-mega-backdoor",
                "employee": {"id": "E-10", "birth_date": "1984-03-01", "compensation": {"per_period": 9000}},
                "election": {"start_date": "2024-01-01", "pretax": {"percent": 25}}}
    nearest = client_post(service, election)["nearest_compliant"]
    assert nearest["found"] and nearest["rechecked"] and nearest["percent_increment"] == "1"
    assert nearest["units"]["pretax"] == "percent"
    assert [r["election"]["pretax"] for r in nearest["schedule"]] == [{"percent": "25"}, {"percent": "5"},
                                                                      {"percent": "0"}]
    assert [r["amounts"]["pretax"] for r in nearest["schedule"]] == ["2250.00", "450.00", "0.00"]


def client_post(service, election: dict) -> dict:
    client, _ = service
    response = client.post("/v1/elections/check", json=election)
    assert response.status_code == 200, response.text
    return response.json()


def test_an_unexpected_failure_is_a_500_problem_and_the_worker_goes_on(service, monkeypatch):
    client, log = service

    def broken(*_args, **_kwargs):
        raise ZeroDivisionError("boom")
    monkeypatch.setattr("plancheck.checks.election.check_election", broken)
    response = client.post("/v1/elections/check", json=document(SEED), headers={"X-Request-ID": "crash-1"})
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "boom" not in response.text
    event = next(e for e in log.events() if e.get("request_id") == "crash-1")
    assert event["status"] == 500 and event["error"] == "ZeroDivisionError"
    monkeypatch.undo()
    assert client.post("/v1/elections/check", json=document(SEED)).status_code == 200


def test_a_broken_plan_at_start_is_exit_2_before_binding(tmp_path, capsys):
    from plancheck.cli import run
    (tmp_path / "bad.yaml").write_text("plan_id: bad\nname: Bad\npayroll: {frequency: fortnightly}\n")
    assert run(["serve", "--plans", str(tmp_path), "--port", "0"]) == 2
    assert "payroll.frequency" in capsys.readouterr().err


def _seed_with(**changes) -> bytes:
    election = document(SEED)
    for path, value in changes.items():
        node = election
        *parents, last = path.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return json.dumps(election).encode()


HOSTILE = [b"NaN", b'{"plan_id": NaN}', b"1" * 5000, b'"text"', b"null", b'{"plan_id": "a", "plan_id": "b"}',
           '{"plan_id": "\\u0000"}'.encode(), _seed_with(employee=[]), _seed_with(plan_id="x" * 10_000),
           _seed_with(employee__compensation={"annual": 1e308}), _seed_with(employee__birth_date="0001-01-01"),
           _seed_with(election__start_date="9999-12-31"), _seed_with(election__pretax={"percent": 100_000}),
           _seed_with(employee__compensation={"per_period": "99999999.99"},
                      election__after_tax={"amount": "99999999.99"})]


@pytest.mark.parametrize("path", ["/v1/elections/check", "/v1/withdrawals/check", "/v1/plans/audit"])
def test_nothing_a_client_sends_is_a_server_error(service, path):
    client, _ = service
    for body in HOSTILE:
        response = client.post(path, content=body, headers={"content-type": "application/json"})
        assert response.status_code < 500, (body[:80], response.text[:300])
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/problem+json")
    assert client.get("/no/such/route").json()["status"] == 404
    assert client.delete("/v1/plans").status_code == 405


def test_serve_is_a_command():
    from plancheck.cli import run
    assert run(["serve", "--help"]) == 0
