"""Benchmark `plancheck serve`: requests per second and p50/p99 latency at 1, 8 and 32 concurrent
clients, with one worker and with `--workers 2`, and the time to decide one election in-process.
Not a test: it prints figures.

The service runs in its own process(es) on a free loopback port (never anything else). The load
generator runs in a process of its own too, started per level, posting realistic elections (the
bundled plans, ages 25-70, pay $30,000-$400,000, dollar and percent elections, some over a limit)
over keep-alive connections, bounded in both count and time per level. Load generator and service
share the machine's cores, so each level also reports the CPU each side used (from /proc: the
service's processes, the generator's own rusage, and everything else on the machine) and the load
average when it started. Two generators are available: `raw` (the default: asyncio streams with
each request's bytes built beforehand, about a tenth of httpx's CPU per request) and `httpx` (an
httpx.AsyncClient, what an integrator's Python code would use).

At the end a model replays the measured costs (in the app, outside it, the generator's) as a
closed loop on free cores: what the service would give with the machine to itself.

    python benchmarks/bench_service.py
    python benchmarks/bench_service.py --wait-idle 120      # on a shared machine: start levels in idle moments
    python benchmarks/bench_service.py --clients 1 8 32 --workers 1 2 --repeat 3 --requests 2000 --seconds 20
    python benchmarks/bench_service.py --client httpx --workers 1 --repeat 1
"""

from __future__ import annotations

import argparse
import asyncio
import io
import ipaddress
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
PATH = "/v1/elections/check"
#: Plans and the years their elections use (a year the bundled limits cover).
PLANS = ("acme-mega-backdoor", "monthly-mega-backdoor", "bayside-safe-harbor", "cedar-tiered-match",
         "delta-annual-true-up", "evergreen-roth-only")
SOURCES = {"acme-mega-backdoor": ("pretax", "roth", "after_tax"), "monthly-mega-backdoor": ("pretax", "roth", "after_tax"),
           "bayside-safe-harbor": ("pretax",), "cedar-tiered-match": ("pretax", "roth"),
           "delta-annual-true-up": ("pretax",), "evergreen-roth-only": ("roth",)}
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def elections(count: int, seed: int = 11) -> list[dict]:
    """`count` plausible elections: mostly a percent of pay, some flat amounts, some high savers, so that
    about one in fourteen breaks a rule (findings and the nearest compliant election are part of the load)."""
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


# -- the load generator (a process of its own) -------------------------------------------------------------------

async def _raw_sender(host: str, port: int) -> tuple:
    """A keep-alive connection that sends a prebuilt request and reads the answer by its Content-Length."""
    reader, writer = await asyncio.open_connection(host, port)

    async def send(payload: bytes) -> int:
        writer.write(payload)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        return int(head[9:12])
    return send, writer.close


async def generate(url: str, kind: str, clients: int, requests: int, seconds: float, server_pid: int) -> dict:
    """`clients` concurrent connections posting elections until `requests` are done or `seconds` have passed;
    with the CPU seconds the generator, the service (`server_pid` and its workers) and the whole machine
    used in that window.

    The connections open one after another while the earlier ones keep posting (not measured), as a
    client's connection pool grows under load; the measured window starts once all are open.
    """
    parsed = urlparse(url)
    if not ipaddress.ip_address(parsed.hostname).is_loopback:
        raise SystemExit("the load generator posts to loopback addresses only")
    bodies = [json.dumps(e).encode() for e in elections(500)]
    latencies: list[float] = []
    state: dict = {"issued": 0, "errors": 0, "warm": 0}
    go = asyncio.Event()
    closers = []
    if kind == "httpx":
        import httpx
        client = httpx.AsyncClient(base_url=url, timeout=30,
                                   limits=httpx.Limits(max_connections=clients, max_keepalive_connections=clients))
        closers.append(client.aclose)
        headers = {"content-type": "application/json"}

        async def connect() -> tuple:
            async def send(body: bytes) -> int:
                return (await client.post(PATH, content=body, headers=headers)).status_code
            return send, None
        payloads = bodies
    else:
        payloads = [(f"POST {PATH} HTTP/1.1\r\nHost: {parsed.netloc}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n").encode() + body for body in bodies]

        async def connect() -> tuple:
            return await _raw_sender(parsed.hostname, parsed.port)

    async def loop(send) -> None:
        while not go.is_set():  # warming up while the other connections open
            await send(payloads[state["warm"] % len(payloads)])
            state["warm"] += 1
        while state["issued"] < requests and time.perf_counter() < state["deadline"]:
            payload = payloads[state["issued"] % len(payloads)]
            state["issued"] += 1
            started = time.perf_counter()
            status = await send(payload)
            latencies.append(time.perf_counter() - started)
            state["errors"] += status != 200

    tasks = []
    for _ in range(clients):
        send, close = await connect()
        if close:
            closers.append(close)
        tasks.append(asyncio.create_task(loop(send)))
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    before = (_own_cpu(), _family_cpu(server_pid), _machine_busy())
    state["deadline"] = time.perf_counter() + seconds
    started = time.perf_counter()
    go.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    own, service, machine = _own_cpu(), _family_cpu(server_pid), _machine_busy()
    for close in closers:
        result = close()
        if asyncio.iscoroutine(result):
            await result
    latencies.sort()
    return {"requests": len(latencies), "errors": state["errors"], "seconds": elapsed,
            "generator_cpu": own - before[0], "service_cpu": service - before[1], "machine_cpu": machine - before[2],
            "rps": len(latencies) / elapsed, "p50_ms": 1000 * _quantile(latencies, 0.5),
            "p99_ms": 1000 * _quantile(latencies, 0.99)}


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


# -- measuring the service ----------------------------------------------------------------------------------------

def in_process(bodies: list[dict]) -> dict:
    """Milliseconds per election in-process: validation + check_election, the nearest compliant election
    for those with errors, and the whole request through the app (ASGI, no socket) for comparison.

    CPU time of this thread, not wall time, so that other work on the machine does not count."""
    from plancheck.checks.election import check_election
    from plancheck.checks.nearest import nearest_compliant
    from plancheck.documents.election import ElectionFile
    from plancheck.findings import has_errors
    from plancheck.service.app import Settings, create_app
    from plancheck.service.state import load_snapshot
    snapshot = load_snapshot(ROOT / "rules", ROOT / "plans")
    times, nearest_times = [], []
    for body in bodies:
        started = time.thread_time()
        election = ElectionFile.model_validate(body)
        plan = snapshot.plans[election.plan_id]
        result = check_election(election, plan, snapshot.limits, snapshot.rulebook, snapshot.engine, "bench")
        times.append(time.thread_time() - started)
        if has_errors(result.findings):
            started = time.thread_time()
            nearest_compliant(election, plan, snapshot.limits, snapshot.rulebook, snapshot.engine)
            nearest_times.append(time.thread_time() - started)
    app = create_app(Settings(rules_dir=ROOT / "rules", plans_dir=ROOT / "plans", watch_interval=None,
                              log_stream=io.StringIO()))
    app_times = asyncio.run(_through_app(app, [json.dumps(b).encode() for b in bodies]))
    return {"elections": len(times), "median_ms": 1000 * statistics.median(times),
            "mean_ms": 1000 * statistics.fmean(times), "with_errors": len(nearest_times),
            "nearest_median_ms": 1000 * statistics.median(nearest_times) if nearest_times else 0.0,
            "nearest_mean_ms": 1000 * statistics.fmean(nearest_times) if nearest_times else 0.0,
            "app_median_ms": 1000 * statistics.median(app_times), "app_mean_ms": 1000 * statistics.fmean(app_times),
            "app_ms": [1000 * t for t in app_times]}


async def _through_app(app, bodies: list[bytes]) -> list[float]:
    """Each body posted through the ASGI app in this process (parsing, validation, check, nearest,
    serialisation, middleware and the request event; no socket, no HTTP parsing)."""
    async def post(body: bytes) -> None:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": PATH, "raw_path": PATH.encode(), "query_string": b"", "root_path": "",
                 "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                             (b"content-length", str(len(body)).encode())],
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict:
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(_message: dict) -> None:
            return None
        await app(scope, receive, send)

    times = []
    async with app.router.lifespan_context(app):
        for body in bodies[:20]:
            await post(body)
        for body in bodies:
            started = time.thread_time()
            await post(body)
            times.append(time.thread_time() - started)
    return times


def closed_loop(app_ms: list[float], outside_ms: float, think_ms: float, split: list[int],
                requests: int = 20_000) -> tuple[float, float, float]:
    """(requests a second, p50 ms, p99 ms) of a model: the same requests on free cores, each worker a core of its own.

    Each worker serves its own connections' requests one at a time in order of arrival (as a
    uvicorn worker runs a CPU-bound check), each costing its measured time through the app
    in-process plus the measured CPU per request outside the app (HTTP, socket, kernel); each
    client posts again `think_ms` after its answer (the generator's CPU per request). No other
    work on the machine, no scheduling delays: what the service would give with the cores to itself.
    """
    import heapq
    owner = [w for w, count in enumerate(split) for _ in range(count)]
    free_at = [0.0] * len(split)
    ready = [(0.0, client) for client in range(len(owner))]
    heapq.heapify(ready)
    latencies = []
    for i in range(requests):
        arrived, client = heapq.heappop(ready)
        worker = owner[client]
        done = max(arrived, free_at[worker]) + app_ms[i % len(app_ms)] + outside_ms
        free_at[worker] = done
        latencies.append(done - arrived)
        heapq.heappush(ready, (done + think_ms, client))
    latencies.sort()
    return 1000 * requests / max(free_at), _quantile(latencies, 0.5), _quantile(latencies, 0.99)


def _splits(clients: int, workers: int) -> list[list[int]]:
    """Ways `clients` connections may sit on the workers: even, and (for two workers) less even."""
    if workers == 1:
        return [[clients]]
    even = clients // 2
    return [[clients - k, k] for k in sorted({even, even - max(1, clients // 8), even - max(2, clients // 4)})
            if 0 <= k <= even]


def _family_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its children (the service's workers)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def _machine_busy() -> float:
    """CPU seconds the whole machine has been busy (not idle, not waiting for I/O), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / TICK


def _events(path: str, offset: int) -> list[dict]:
    """The service's JSON events written after `offset`."""
    with open(path, encoding="utf-8") as handle:
        handle.seek(offset)
        return [json.loads(line) for line in handle if line.startswith("{")]


def start_service(workers: int, log_path: str) -> tuple[subprocess.Popen, str]:
    log = open(log_path, "w")
    server = subprocess.Popen([sys.executable, "-m", "plancheck", "serve", "--host", "127.0.0.1", "--port", "0",
                               "--plans", str(ROOT / "plans"), "--watch", "0", "--workers", str(workers)],
                              stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 60
    while True:
        events = _events(log_path, 0)
        port = next((e["port"] for e in events if e["event"] == "listening"), None)
        loaded = {e["pid"] for e in events if e["event"] == "rules_loaded"}
        if port and len(loaded) >= workers:
            url = f"http://127.0.0.1:{port}"
            _warm(url, workers)
            return server, url
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the service did not start:\n{Path(log_path).read_text()}")
        time.sleep(0.1)


def _warm(url: str, workers: int) -> None:
    """A few elections on fresh connections, so that every worker has answered some before measuring."""
    import httpx
    bodies = elections(20 * workers, seed=7)
    with httpx.Client(base_url=url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        for body in bodies:
            client.post(PATH, json=body)


def wait_for_idle(limit: float, busy_below: float = 0.15) -> float:
    """Wait (at most `limit` seconds) for a second in which the machine is busy less than `busy_below` cores;
    return the seconds waited. On a shared machine this starts a level when other work pauses; the
    level's 'other' column still says how much ran beside it."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        before = _machine_busy()
        time.sleep(1.0)
        if _machine_busy() - before < busy_below:
            break
    return time.monotonic() - started


def measure_level(server: subprocess.Popen, url: str, log_path: str, kind: str, clients: int, requests: int,
                  seconds: float, idle_wait: float = 0.0) -> dict:
    """One level: the generator in its own process; CPU of service, generator and the rest of the machine."""
    waited = wait_for_idle(idle_wait) if idle_wait else 0.0
    load1 = os.getloadavg()[0]
    offset = os.path.getsize(log_path)
    generator = subprocess.run([sys.executable, __file__, "--generate", url, "--server-pid", str(server.pid),
                                "--client", kind, "--clients", str(clients), "--requests", str(requests),
                                "--seconds", str(seconds)], capture_output=True, text=True, check=True)
    figures = json.loads(generator.stdout)
    time.sleep(0.2)
    served = [e for e in _events(log_path, offset) if e.get("route") == PATH]
    side = sorted(e["latency_ms"] for e in served)
    per_worker = sorted(Counter(e["pid"] for e in served).values(), reverse=True)
    window, n = figures["seconds"], max(1, figures["requests"])
    other = figures["machine_cpu"] - figures["service_cpu"] - figures["generator_cpu"]
    return {**figures, "clients": clients, "load1": load1, "waited": waited, "split": "/".join(
                f"{100 * c / len(served):.0f}" for c in per_worker) if served else "-", "server_p50": _quantile(side, 0.5),
            "server_p99": _quantile(side, 0.99),
            "server_cpu_ms": 1000 * figures["service_cpu"] / n, "generator_cpu_ms": 1000 * figures["generator_cpu"] / n,
            "server_cores": figures["service_cpu"] / window, "generator_cores": figures["generator_cpu"] / window,
            "other_cores": max(0.0, other / window)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="service worker processes")
    parser.add_argument("--repeat", type=int, default=3, help="runs of every level")
    parser.add_argument("--requests", type=int, default=2000, help="at most this many requests per level")
    parser.add_argument("--seconds", type=float, default=20.0, help="at most this long per level")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw", help="load generator")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="before each level, wait up to this long for an idle second on the machine")
    parser.add_argument("--generate", metavar="URL", help=argparse.SUPPRESS)  # the generator process
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        _fast_loop()
        print(json.dumps(asyncio.run(generate(args.generate, args.client, args.clients[0], args.requests,
                                              args.seconds, args.server_pid))))
        return
    cores = os.cpu_count()
    print(f"{cores} cores; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} at start")
    figures = in_process(elections(500))
    print(f"in-process (CPU time): {figures['elections']} elections; validation + check median {figures['median_ms']:.2f} ms, "
          f"mean {figures['mean_ms']:.2f} ms; nearest compliant election for the {figures['with_errors']} with errors "
          f"median {figures['nearest_median_ms']:.2f} ms, mean {figures['nearest_mean_ms']:.2f} ms; the whole "
          f"request through the app (no socket) median {figures['app_median_ms']:.2f} ms, mean "
          f"{figures['app_mean_ms']:.2f} ms")
    print(f"POST {PATH}, load generator: {args.client}, in its own process. p50/p99: as the generator saw them; "
          f"svc p50/p99: the service's latency_ms events (from the app receiving the request: waiting in the socket "
          f"while the worker is busy is not in them); cores: CPU used in the level's window by the service / the "
          f"generator / everything else on the machine; ms/req: CPU per request; worker %: requests per worker")
    header = (f"{'workers':>7} {'clients':>7} {'load1':>5} {'requests':>8} {'err':>4} {'req/s':>6} {'p50 ms':>7} "
              f"{'p99 ms':>7} {'svc p50':>7} {'svc p99':>7} {'cores svc/gen/other':>19} {'ms/req svc':>10} "
              f"{'ms/req gen':>10} {'worker %':>8}")
    results: dict[tuple[int, int], list[dict]] = {}
    for workers in args.workers:
        with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
            log_path = str(Path(tmp) / "events.jsonl")
            server, url = start_service(workers, log_path)
            try:
                print(f"\nservice on {url} with {workers} worker(s)\n{header}")
                for _run in range(args.repeat):
                    for clients in args.clients:
                        r = measure_level(server, url, log_path, args.client, clients, args.requests, args.seconds,
                                          args.wait_idle)
                        results.setdefault((workers, clients), []).append(r)
                        print(f"{workers:>7} {clients:>7} {r['load1']:>5.2f} {r['requests']:>8} {r['errors']:>4} "
                              f"{r['rps']:>6.0f} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['server_p50']:>7.2f} "
                              f"{r['server_p99']:>7.2f} {r['server_cores']:>7.2f}/{r['generator_cores']:.2f}/"
                              f"{r['other_cores']:.2f} {r['server_cpu_ms']:>10.2f} {r['generator_cpu_ms']:>10.2f} {r['split']:>8}",
                              flush=True)
            finally:
                server.terminate()
                server.wait(30)
    print("\nmedians over the runs (range):")
    print(f"{'workers':>7} {'clients':>7} {'req/s':>13} {'p50 ms':>13} {'p99 ms':>13} {'svc ms/req':>10}")
    for (workers, clients), runs in results.items():
        def span(key: str, digits: int) -> str:
            values = sorted(r[key] for r in runs)
            return f"{statistics.median(values):.{digits}f} ({values[0]:.{digits}f}-{values[-1]:.{digits}f})"
        print(f"{workers:>7} {clients:>7} {span('rps', 0):>13} {span('p50_ms', 1):>13} {span('p99_ms', 1):>13} "
              f"{statistics.median(r['server_cpu_ms'] for r in runs):>10.2f}")
    if not results:
        return
    service_ms = statistics.median(r["server_cpu_ms"] for runs in results.values() for r in runs)
    generator_ms = statistics.median(r["generator_cpu_ms"] for runs in results.values() for r in runs)
    outside = max(0.0, service_ms - figures["app_mean_ms"])
    print(f"\nmodel, the same requests with free cores (service {service_ms:.2f} ms of CPU a request measured above: "
          f"{figures['app_mean_ms']:.2f} in the app + {outside:.2f} outside it; generator {generator_ms:.2f} ms):")
    print(f"{'workers':>7} {'clients':>7} {'connections per worker':>22} {'req/s':>6} {'p50 ms':>7} {'p99 ms':>7}")
    for workers in args.workers:
        for clients in args.clients:
            for split in _splits(clients, workers):
                rps, p50, p99 = closed_loop(figures["app_ms"], outside, generator_ms, split)
                print(f"{workers:>7} {clients:>7} {'/'.join(map(str, split)):>22} {rps:>6.0f} {p50:>7.2f} {p99:>7.2f}")


def _fast_loop() -> None:
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass


if __name__ == "__main__":
    main()
