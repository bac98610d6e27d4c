"""Starting the service: check where it may listen, read the token, load once, run uvicorn."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from plancheck.errors import InputError, Problem


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_token(path: Path) -> bytes:
    """The bearer token of a token file (surrounding whitespace removed); at least 16 characters."""
    try:
        token = path.read_bytes().strip()
    except OSError as exc:
        raise InputError(Problem(str(path), "--token-file", f"cannot read: {exc.strerror or exc}")) from None
    if len(token) < 16 or any(b < 0x21 or b > 0x7e for b in token):
        raise InputError(Problem(str(path), "--token-file", "expected one token of at least 16 printable "
                                 "characters without spaces"))
    return token


def serve(plans_dir: Path, rules_dir: Path, host: str, port: int, token_file: Path | None, max_body: int,
          watch: float) -> None:
    """Run the service until SIGINT or SIGTERM. Refuses a non-loopback address without a token."""
    import uvicorn

    from plancheck.service.app import Settings, create_app
    from plancheck.service.state import load_snapshot
    token = read_token(token_file) if token_file is not None else None
    if token is None and not is_loopback(host):
        raise InputError(Problem("plancheck serve", "--host", f"refusing to listen on {host} without --token-file: an "
                                 "open service binds to loopback only (127.0.0.1, ::1, localhost)"))
    load_snapshot(rules_dir, plans_dir).engine.close()  # a broken rule or plan is exit 2 before binding
    settings = Settings(rules_dir=rules_dir, plans_dir=plans_dir, token=token, max_body=max_body,
                        watch_interval=watch or None)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", access_log=False,
                lifespan="on", server_header=False)
