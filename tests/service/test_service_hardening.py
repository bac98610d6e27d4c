"""The service under attack, on a real loopback socket: clients that never finish their request, a huge
header, SIGTERM while a client holds half a body, a foreign Host (DNS rebinding), framing, plain-text
logs, and a rotated token. Each test is the attack first, with bounded counts and times."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from helpers import ROOT, eventually
from helpers.service_server import Served, running
from plancheck.service.protocol import MAX_HEAD

posix = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
HALF_HEADER = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def connect(url: str) -> socket.socket:
    host, port = url.rsplit("/", 1)[-1].split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def until_closed(sock: socket.socket, seconds: float) -> tuple[bytes, float]:
    """What the server sent before it closed the connection, and when (monotonic); fails if still open."""
    sock.settimeout(0.2)
    received, deadline = b"", time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return received, time.monotonic()
        if not chunk:
            return received, time.monotonic()
        received += chunk
    raise AssertionError(f"still open after {seconds} s (received {received[:80]!r})")


def still_open(sock: socket.socket) -> bool:
    """True if the server has not closed the connection (whatever it may have sent)."""
    sock.settimeout(0.05)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return True
    except ConnectionResetError:
        pass
    return False


def healthz_seconds(url: str) -> float:
    started = time.monotonic()
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    return time.monotonic() - started


def head(extra: int, host: str = "127.0.0.1") -> bytes:
    """A GET /healthz whose request line and headers take MAX_HEAD + `extra` bytes in all."""
    start, end = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Pad: ".encode(), b"\r\n\r\n"
    # uvicorn measures name + value + 4 per header and the URL: the padding makes the total exact
    measured = len("/healthz") + (len("host") + len(host) + 4) + (len("x-pad") + 4)
    return start + b"a" * (MAX_HEAD + extra - measured) + end


# -- clients that never finish their request -------------------------------------------------------------------

def test_80_clients_holding_half_a_header_are_closed_at_the_read_timeout_and_healthz_answers_meanwhile():
    with running(ROOT / "rules", ROOT / "plans", watch_interval=None, read_timeout=1.5) as (url, log):
        slow = [connect(url) for _ in range(80)]
        for sock in slow:
            sock.sendall(HALF_HEADER)
        opened = time.monotonic()
        assert healthz_seconds(url) < 1.0
        closed = [until_closed(sock, 6.0) for sock in slow]
        assert all(answer.startswith(b"HTTP/1.1 408 ") for answer, _ in closed)
        assert max(when for _, when in closed) - opened < 1.5 + 1.5
        assert [e["reason"] for e in log.events() if e["event"] == "connection_closed"].count("read_timeout") == 80
        for sock in slow:
            sock.close()


def test_a_connection_that_sends_nothing_or_half_a_body_is_closed_at_the_read_timeout():
    with running(ROOT / "rules", ROOT / "plans", watch_interval=None, read_timeout=1.0) as (url, log):
        silent, half_body = connect(url), connect(url)
        half_body.sendall(b"POST /v1/plans/audit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 500\r\n\r\n{")
        opened = time.monotonic()
        answer, when = until_closed(half_body, 5.0)
        assert answer.startswith(b"HTTP/1.1 408 ") and when - opened < 1.0 + 1.0
        answer, when = until_closed(silent, 5.0)
        assert answer == b"" and when - opened < 1.0 + 1.0  # nothing asked, nothing answered: just closed
        # The request's log line is written after the connection is closed: wait for it, as the other service tests do.
        requests = eventually(lambda: [e for e in log.events() if e["event"] == "request"], seconds=5.0)
        assert [(e["route"], e["status"], e["error"]) for e in requests] == [("/v1/plans/audit", 408, "read_timeout")]


def test_a_header_trickled_a_byte_at_a_time_is_closed_at_the_deadline_not_kept_alive_by_each_byte():
    with running(ROOT / "rules", ROOT / "plans", watch_interval=None, read_timeout=1.0) as (url, _log):
        sock = connect(url)
        started = time.monotonic()
        with pytest.raises(OSError):
            for byte in HALF_HEADER * 10:
                sock.sendall(bytes([byte]))
                time.sleep(0.1)
                assert time.monotonic() - started < 3.0, "a trickling client held the connection past the deadline"
        assert time.monotonic() - started < 3.0
        sock.close()


def test_a_request_whose_header_completes_just_in_time_is_answered():
    with running(ROOT / "rules", ROOT / "plans", watch_interval=None, read_timeout=1.5) as (url, _log):
        sock = connect(url)
        sock.sendall(HALF_HEADER)
        time.sleep(0.8)
        sock.sendall(b"1\r\n\r\n")
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 ")
        sock.close()


def test_more_slow_clients_than_connections_close_the_oldest_and_healthz_still_answers():
    with running(ROOT / "rules", ROOT / "plans", watch_interval=None, read_timeout=30, max_connections=20) as (url, log):
        slow = []
        for _ in range(40):
            slow.append(connect(url))
            slow[-1].sendall(HALF_HEADER)
            time.sleep(0.01)  # accepted in order
        assert healthz_seconds(url) < 1.0
        assert until_closed(slow[0], 2.0)[0].startswith(b"HTTP/1.1 503 ")  # the oldest went first
        assert still_open(slow[-1])
        evicted = [e for e in log.events() if e["event"] == "connection_closed" and e["reason"] == "evicted"]
        assert len(evicted) >= 21  # 40 slow ones and the health check, 20 at a time
        assert {e["status"] for e in evicted} == {503}  # each had begun a request: told why
        for sock in slow:
            sock.close()


def test_a_slow_body_makes_room_too_and_its_request_is_logged_as_evicted():
    with running(ROOT / "rules", ROOT / "plans", watch_interval=None, read_timeout=30, max_connections=2) as (url, log):
        idle, half_body = connect(url), connect(url)
        half_body.sendall(b"POST /v1/plans/audit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 500\r\n"
                          b"Expect: 100-continue\r\n\r\n")
        assert half_body.recv(4096).startswith(b"HTTP/1.1 100 ")
        half_body.sendall(b"{")
        assert healthz_seconds(url) < 1.0  # two slots taken: the idle connection, the oldest, goes
        assert until_closed(idle, 2.0)[0] == b"" and still_open(half_body)  # nothing asked, nothing answered
        later = connect(url)  # the slots are taken again, by the slow body and a newer idle connection
        slow = [idle, half_body, later]
        time.sleep(0.1)
        assert healthz_seconds(url) < 1.0  # now the slow body is the oldest
        assert until_closed(half_body, 2.0)[0].startswith(b"HTTP/1.1 503 ") and still_open(later)
        requests = [e for e in log.events() if e["event"] == "request" and e["route"] == "/v1/plans/audit"]
        assert [(e["status"], e["error"]) for e in requests] == [(503, "evicted")]
        for sock in slow:
            sock.close()


def test_without_httptools_the_h11_protocol_keeps_the_same_deadline_and_a_bounded_head(monkeypatch):
    from uvicorn.protocols.http.h11_impl import H11Protocol

    from plancheck.service import protocol
    monkeypatch.setattr(protocol, "_base", lambda: H11Protocol)
    with running(ROOT / "rules", ROOT / "plans", watch_interval=None, read_timeout=1.0) as (url, _log):
        assert healthz_seconds(url) < 1.0
        slow = connect(url)
        slow.sendall(HALF_HEADER)
        opened = time.monotonic()
        assert until_closed(slow, 5.0)[1] - opened < 1.0 + 1.0
        big = connect(url)
        try:
            big.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (4 * 1024 * 1024))
            answer = until_closed(big, 5.0)[0]
        except OSError:  # closed while sending: refused just the same
            answer = b""
        assert not answer.startswith(b"HTTP/1.1 200")
        for sock in (slow, big):
            sock.close()


# -- a huge header ----------------------------------------------------------------------------------------------

def test_a_head_of_exactly_the_limit_is_answered_and_one_byte_more_is_431():
    with running(ROOT / "rules", ROOT / "plans", watch_interval=None) as (url, log):
        for extra, status in ((0, b"200"), (1, b"431")):
            sock = connect(url)
            sock.sendall(head(extra))
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 " + status), (extra, answer[:60])
            sock.close()
        refused = [e for e in log.events() if e["event"] in ("connection_closed", "invalid_http_request")]
        assert [(e["event"], e["reason"], e["status"]) for e in refused] == [("connection_closed", "head_too_large", 431)]


def test_a_32_mb_header_is_refused_before_it_is_buffered(tmp_path):
    service = Served(tmp_path)
    try:
        def peak_kb() -> int:
            status = Path(f"/proc/{service.process.pid}/status").read_text()
            return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))

        before = peak_kb()
        sock = connect(service.url)
        sent, started = 0, time.monotonic()
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
            for _ in range(32 * 16):  # 32 MB in 64 KiB pieces
                sock.sendall(b"a" * 65536)
                sent += 65536
        except OSError:  # closed by the server
            pass
        # the kernel's socket buffers on loopback take a few MB that the server never reads
        assert sent < 16 * 1024 * 1024, f"the server took {sent:,} bytes of one header"
        assert time.monotonic() - started < 5
        sock.close()
        assert peak_kb() - before < 16 * 1024
        assert service.eventually(lambda: [e for e in service.find("connection_closed")
                                           if e["reason"] == "head_too_large"])
        assert httpx.get(f"{service.url}/healthz", timeout=5).status_code == 200
    finally:
        service.stop()


# -- SIGTERM while a client holds half a body; every line of the log is JSON -----------------------------------

@posix
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_with_half_a_body_held_exits_within_the_shutdown_deadline_and_every_log_line_is_json(tmp_path,
                                                                                                 workers):
    service = Served(tmp_path, "--read-timeout", "60", "--shutdown-timeout", "2", workers=workers)
    garbage = connect(service.url)  # uvicorn's own warning, which it used to write as plain text
    garbage.sendall(b"NOT HTTP AT ALL\r\n\r\n")
    assert garbage.recv(4096).startswith(b"HTTP/1.1 400 ")
    garbage.close()
    holder = connect(service.url)
    holder.sendall(b"POST /v1/elections/check HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 1000\r\nExpect: 100-continue\r\n\r\n")
    assert holder.recv(4096).startswith(b"HTTP/1.1 100 ")  # the app is reading the body now
    holder.sendall(b"{\"plan_id\": ")
    time.sleep(0.2)
    started = time.monotonic()
    service.process.send_signal(signal.SIGTERM)
    try:
        status = service.process.wait(2 + 4)
    except Exception:
        service.process.kill()
        raise
    finally:
        service.log.close()
    assert status == 128 + signal.SIGTERM
    assert time.monotonic() - started < 2 + 4
    assert until_closed(holder, 2.0)[0].startswith(b"HTTP/1.1 503 ")
    holder.close()
    lines = service.log_path.read_text().splitlines()
    events = [json.loads(line) for line in lines]  # every line: a JSON object with an event name
    assert all(isinstance(e, dict) and e.get("event") for e in events)
    names = [e["event"] for e in events]
    assert "invalid_http_request" in names and "shutdown_deadline_passed" in names
    assert names[-1] == "stopped" and events[-1]["signal"] == "SIGTERM"
    assert not any("Traceback" in line for line in lines)


# -- Host (DNS rebinding) and security headers ------------------------------------------------------------------

def test_a_foreign_host_is_refused_except_for_the_health_checks():
    with running(ROOT / "rules", ROOT / "plans", watch_interval=None) as (url, log):
        port = url.rsplit(":", 1)[1]
        with httpx.Client(base_url=url, timeout=10) as client:
            for path in ("/v1/plans", "/", "/openapi.json", "/v1/rules"):
                refused = client.get(path, headers={"Host": f"attacker.example:{port}"})
                assert refused.status_code == 400, path
                assert refused.json()["type"] == "/problems/host-not-allowed"
            for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "LOCALHOST"):
                assert client.get("/v1/plans", headers={"Host": host}).status_code == 200, host
            for path in ("/healthz", "/readyz"):
                assert client.get(path, headers={"Host": "10.1.2.3"}).status_code == 200
        assert [e["status"] for e in log.events() if e.get("error") == "host_not_allowed"] == [400] * 4


def test_allowed_host_names_are_the_bind_address_unless_given():
    from plancheck.errors import InputError
    from plancheck.service.guard import allowed_hosts
    assert allowed_hosts("127.0.0.1", []) == {"127.0.0.1", "localhost", "::1"}
    assert allowed_hosts("[::1]", []) == {"127.0.0.1", "localhost", "::1"}
    assert allowed_hosts("10.0.0.5", []) == {"10.0.0.5"}
    assert allowed_hosts("10.0.0.5", ["Plancheck.Internal:8443", "10.0.0.5"]) == {"plancheck.internal", "10.0.0.5"}
    assert allowed_hosts("0.0.0.0", ["*"]) is None
    with pytest.raises(InputError, match="--allowed-host"):
        allowed_hosts("0.0.0.0", [])


def test_serve_on_every_interface_without_allowed_host_is_exit_2_naming_the_option(tmp_path, capsys):
    from plancheck.cli import run
    token = tmp_path / "token"
    token.write_text("a-long-enough-token-0123456789\n")
    assert run(["serve", "--host", "0.0.0.0", "--port", "0", "--token-file", str(token)]) == 2
    err = capsys.readouterr().err
    assert "--allowed-host" in err and len(err.strip().splitlines()) == 1


def test_a_service_given_its_name_answers_that_name_and_refuses_the_others():
    with running(ROOT / "rules", ROOT / "plans", watch_interval=None,
                 allowed_hosts=frozenset({"plancheck.internal"})) as (url, _log):
        assert httpx.get(f"{url}/v1/plans", headers={"Host": "plancheck.internal"}).status_code == 200
        assert httpx.get(f"{url}/v1/plans").status_code == 400


def test_every_response_says_nosniff_and_cannot_be_framed():
    with running(ROOT / "rules", ROOT / "plans", watch_interval=None, token=b"a-long-enough-token-0123456789",
                 max_body=1024) as (url, _log):
        with httpx.Client(base_url=url, timeout=10) as client:
            good = {"Authorization": "Bearer a-long-enough-token-0123456789"}
            responses = [client.get("/"), client.get("/healthz"), client.get("/v1/plans", headers=good),
                         client.get("/v1/plans"), client.get("/nowhere"),
                         client.post("/v1/plans/audit", headers=good, content=b"{}" * 1000),
                         client.post("/v1/plans/audit", headers=good, content=b"[")]
        sock = connect(url)
        sock.sendall(head(1))
        raw = sock.recv(65536).decode("latin-1")
        sock.close()
        assert [r.status_code for r in responses] == [200, 200, 200, 401, 404, 413, 422] and " 431 " in raw
        for headers in [r.headers for r in responses] + [httpx.Headers([tuple(line.split(": ", 1)) for line in
                                                                         raw.split("\r\n\r\n")[0].split("\r\n")[1:]])]:
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["x-frame-options"] == "DENY"
            assert "frame-ancestors 'none'" in headers["content-security-policy"]
            assert headers["referrer-policy"] == "no-referrer"
        page_policy = responses[0].headers["content-security-policy"]
        assert "connect-src 'self'" in page_policy and "default-src 'none'" in page_policy


# -- token rotation ---------------------------------------------------------------------------------------------

@posix
@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_rotates_the_token_and_a_bad_token_file_keeps_the_current_one(tmp_path, workers):
    old, new = "old-token-0123456789abcdef", "new-token-0123456789abcdef"
    token_file = tmp_path / "token"
    token_file.write_text(old + "\n")
    service = Served(tmp_path, "--token-file", str(token_file), workers=workers)
    try:
        def statuses(token: str) -> set[int]:
            return {r.status_code for r in service.spread(
                lambda c: c.get("/v1/plans", headers={"Authorization": f"Bearer {token}"}), 16)}

        assert statuses(old) == {200} and statuses(new) == {401}
        token_file.write_text(new + "\n")
        service.process.send_signal(signal.SIGHUP)
        service.eventually(lambda: {e["pid"] for e in service.find("token_loaded")} >= set(service.workers))
        assert statuses(old) == {401} and statuses(new) == {200}
        token_file.write_text("short\n")  # a broken file must not open the service nor lock everyone out
        service.process.send_signal(signal.SIGHUP)
        service.eventually(lambda: {e["pid"] for e in service.find("token_reload_failed")} >= set(service.workers))
        assert statuses(new) == {200} and statuses("short") == {401}
    finally:
        assert service.stop() == 128 + signal.SIGTERM


def test_what_uvicorn_asyncio_warnings_and_stray_exceptions_log_in_a_service_process_is_json_lines():
    program = """
import asyncio, gc, logging, threading, warnings
from plancheck.service.process import server_logs_as_json
server_logs_as_json(None, everything=True)
logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
logging.getLogger("uvicorn.error").info("Started server process [%d]", 1)  # below warning: not written
logging.getLogger("uvicorn").warning("something new in uvicorn %s", "9.9")
logging.getLogger("asyncio").error("Task exception was never retrieved", exc_info=ValueError("E-1001 1979-06-15"))
warnings.warn("a deprecation", DeprecationWarning, stacklevel=1)
thread = threading.Thread(target=lambda: 1 / 0)
thread.start(); thread.join()
class Broken:
    def __del__(self):
        raise RuntimeError("in a destructor")
Broken(); gc.collect()
"""
    done = subprocess.run([sys.executable, "-W", "always", "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines()]  # every line: JSON
    assert [e["event"] for e in events] == ["invalid_http_request", "server_message", "server_message",
                                            "server_message", "server_message", "server_message"]
    assert [e.get("exception") for e in events] == [None, None, "ValueError", None, "ZeroDivisionError",
                                                    "RuntimeError"]
    assert events[1]["message"] == "something new in uvicorn 9.9" and events[1]["logger"] == "uvicorn"
    assert "1979-06-15" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("module", ["fastapi", "uvicorn"])
def test_serve_without_the_service_extra_is_exit_2_naming_the_install(module, monkeypatch, capsys):
    from plancheck.cli import run
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: importing it raises ImportError
    assert run(["serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'plancheck[service]'" in err and len(err.strip().splitlines()) == 1

