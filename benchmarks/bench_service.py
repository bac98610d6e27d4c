"""Benchmark `plancheck serve`: requests per second and p50/p99 latency at 1, 8 and 32 concurrent
clients, and the time to decide one election in-process. Not a test: it prints figures.

The service runs in its own process on a free loopback port (never anything else); the load
generator is an async httpx client posting realistic elections (the bundled plans, ages 25-70,
pay $30,000-$400,000, dollar and percent elections, some over a limit), bounded in both count
and time per level.

    python benchmarks/bench_service.py
    python benchmarks/bench_service.py --clients 1 8 32 --requests 2000 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
#: Plans and the years their elections use (a year the bundled limits cover).
PLANS = ("acme-mega-backdoor", "monthly-mega-backdoor", "bayside-safe-harbor", "cedar-tiered-match",
         "delta-annual-true-up", "evergreen-roth-only")
SOURCES = {"acme-mega-backdoor": ("pretax", "roth", "after_tax"), "monthly-mega-backdoor": ("pretax", "roth", "after_tax"),
           "bayside-safe-harbor": ("pretax",), "cedar-tiered-match": ("pretax", "roth"),
           "delta-annual-true-up": ("pretax",), "evergreen-roth-only": ("roth",)}


def elections(count: int, seed: int = 11) -> list[dict]:
    """`count` plausible elections: mostly a percent of pay, some flat amounts, some high savers, so that
    about one in eight breaks a rule (findings and the nearest compliant election are part of the load)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        plan = rng.choice(PLANS)
        year = rng.choice((2024, 2025, 2026))
        pay = rng.randrange(30_000, 400_000, 500)
        terms: dict = {"start_date": f"{year}-{rng.randint(1, 11):02d}-01"}
        saver = rng.random() < 0.15
        for source in SOURCES[plan]:
            if rng.random() < 0.4:
                continue
            if rng.random() < 0.75:
                terms[source] = {"percent": rng.choice((15, 20, 25) if saver else (2, 3, 4, 5, 6, 8))}
            else:
                terms[source] = {"amount": rng.choice((1500, 2500, 4000) if saver else (50, 100, 150, 200, 300))}
        out.append({"plan_id": plan, "employee": {
            "id": f"E-{i:06d}", "birth_date": f"{year - rng.randint(25, 70)}-{rng.randint(1, 12):02d}-15",
            "compensation": {"annual": pay}, "prior_year_fica_wages": int(pay * rng.uniform(0.8, 1.0))},
            "election": terms})
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def load(url: str, bodies: list[dict], clients: int, requests: int, seconds: float) -> dict:
    """`clients` concurrent loops posting elections until `requests` are done or `seconds` have passed."""
    latencies: list[float] = []
    errors = 0
    issued = 0
    deadline = time.perf_counter() + seconds

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal issued, errors
        while issued < requests and time.perf_counter() < deadline:
            body = bodies[issued % len(bodies)]
            issued += 1
            started = time.perf_counter()
            response = await client.post("/v1/elections/check", json=body)
            latencies.append(time.perf_counter() - started)
            errors += response.status_code != 200

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        for body in bodies[:20]:  # warm up the connection pool and the worker
            await client.post("/v1/elections/check", json=body)
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {"clients": clients, "requests": len(latencies), "errors": errors, "rps": len(latencies) / elapsed,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]}


def in_process(bodies: list[dict]) -> dict:
    """Milliseconds to decide one election in-process (validation + check_election), and with the nearest."""
    from plancheck.checks.election import check_election
    from plancheck.checks.nearest import nearest_compliant
    from plancheck.documents.election import ElectionFile
    from plancheck.findings import has_errors
    from plancheck.service.state import load_snapshot
    snapshot = load_snapshot(ROOT / "rules", ROOT / "plans")
    times, nearest_times = [], []
    for body in bodies:
        started = time.perf_counter()
        election = ElectionFile.model_validate(body)
        plan = snapshot.plans[election.plan_id]
        result = check_election(election, plan, snapshot.limits, snapshot.rulebook, snapshot.engine, "bench")
        times.append(time.perf_counter() - started)
        if has_errors(result.findings):
            started = time.perf_counter()
            nearest_compliant(election, plan, snapshot.limits, snapshot.rulebook, snapshot.engine)
            nearest_times.append(time.perf_counter() - started)
    return {"elections": len(times), "median_ms": 1000 * statistics.median(times),
            "mean_ms": 1000 * statistics.fmean(times), "with_errors": len(nearest_times),
            "nearest_median_ms": 1000 * statistics.median(nearest_times) if nearest_times else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=2000, help="at most this many requests per level")
    parser.add_argument("--seconds", type=float, default=20.0, help="at most this long per level")
    args = parser.parse_args()
    bodies = elections(500)
    figures = in_process(bodies)
    print(f"in-process: {figures['elections']} elections, median {figures['median_ms']:.2f} ms, "
          f"mean {figures['mean_ms']:.2f} ms per election; nearest compliant election for the "
          f"{figures['with_errors']} with errors: median {figures['nearest_median_ms'] or 0:.2f} ms")
    port = free_port()
    # The service's own events give its side of the latency (from the request line to the last byte).
    events = tempfile.NamedTemporaryFile("w+", suffix=".jsonl", prefix="bench-service-")
    server = subprocess.Popen([sys.executable, "-m", "plancheck", "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--plans", str(ROOT / "plans"), "--watch", "0"],
                              stdout=subprocess.DEVNULL, stderr=events, cwd=ROOT,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the service did not start")
            time.sleep(0.1)
        print(f"service on {url} ({os.cpu_count()} cores), POST /v1/elections/check:")
        print(f"{'clients':>8} {'requests':>9} {'errors':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'server p50':>11} {'server p99':>11}")
        for clients in args.clients:
            start = os.path.getsize(events.name)
            r = asyncio.run(load(url, bodies, clients, args.requests, args.seconds))
            time.sleep(0.2)
            server_side = sorted(e["latency_ms"] for e in _events(events.name, start) if e.get("event") == "request")
            p50 = server_side[len(server_side) // 2] if server_side else float("nan")
            p99 = server_side[min(len(server_side) - 1, int(len(server_side) * 0.99))] if server_side else float("nan")
            print(f"{r['clients']:>8} {r['requests']:>9} {r['errors']:>7} {r['rps']:>8.0f} {r['p50_ms']:>8.2f} "
                  f"{r['p99_ms']:>8.2f} {p50:>11.2f} {p99:>11.2f}")
    finally:
        server.terminate()
        server.wait(10)
        events.close()


def _events(path: str, offset: int) -> list[dict]:
    """The service's JSON events written after `offset`."""
    with open(path, encoding="utf-8") as handle:
        handle.seek(offset)
        return [json.loads(line) for line in handle if line.startswith("{")]


if __name__ == "__main__":
    main()
