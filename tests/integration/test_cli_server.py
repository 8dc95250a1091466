"""`tidings serve` and `tidings admin` as an operator runs them: real processes, real ports."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
from core_helpers import register

TIDINGS = [sys.executable, "-m", "tidings.cli.main"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_admin_invite_prints_a_code_and_refuses_bad_numbers(tmp_path: Path) -> None:
    plain = subprocess.run(
        [*TIDINGS, "admin", "invite", "+15550100001", "--data", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert re.fullmatch(r"\d{6}\n", plain.stdout)
    as_json = subprocess.run(
        [*TIDINGS, "admin", "invite", "+1 555 010 0002", "--data", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"phone": "+15550100002"' in as_json.stdout
    bad = subprocess.run(
        [*TIDINGS, "admin", "invite", "12", "--data", str(tmp_path)], capture_output=True, text=True
    )
    assert bad.returncode != 0
    assert "phone number" in bad.stderr and bad.stdout == ""


def test_serve_with_demo_data_accepts_registrations_and_holds_its_data_folder(
    tmp_path: Path,
) -> None:
    port = free_port()
    server = subprocess.Popen(
        [*TIDINGS, "serve", "--data", str(tmp_path), "--port", str(port), "--demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output: list[str] = []
        assert server.stdout is not None
        for line in server.stdout:  # blocks until the server has said it is up
            output.append(line)
            if "Uvicorn running on" in line or "Application startup complete" in line:
                break
        text = "".join(output)
        codes = dict(re.findall(r"--phone (\+\d+) --code (\d{6})", text))
        assert set(codes) == {"+15550100001", "+15550100002"}, text
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            alice = register(client, "+15550100001", codes["+15550100001"])
            assert client.get("/v1/whoami", headers=alice.headers).json()["phone"] == "+15550100001"
        second = subprocess.run(
            [*TIDINGS, "serve", "--data", str(tmp_path), "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert "already using" in second.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_server_keeps_idle_connections_longer_than_clients_do(tmp_path: Path) -> None:
    """A server that closes an idle keep-alive connection as the client reuses it answers
    nothing: the client's POST fails ("Server disconnected without sending a response")."""
    from tidings.cli.server import server_config
    from tidings.config import load_settings

    settings = load_settings(tmp_path, server={"host": "0.0.0.0", "port": 9123})
    config = server_config(object(), settings, "warning")
    client_expiry = httpx.Limits().keepalive_expiry  # the SDK's client keeps httpx's default
    assert client_expiry is not None
    assert config.timeout_keep_alive > client_expiry
    assert (config.host, config.port, config.ws_per_message_deflate) == ("0.0.0.0", 9123, False)
    assert config.ws_ping_interval == settings.server.websocket_heartbeat_seconds

    shorter = load_settings(tmp_path, server={"keep_alive_seconds": 2})
    assert server_config(object(), shorter, "warning").timeout_keep_alive == 2


def test_serve_sets_the_interpreters_switch_interval_from_its_settings(
    tmp_path: Path, monkeypatch
) -> None:
    """The group commit's fsync runs in a thread that must get the GIL back promptly from a
    busy event loop (db/wal_flush.py): `serve` sets `server.switch_interval_ms` before the
    server runs. The server itself is not started here: its `run` records what it found."""
    import gc

    import uvicorn
    from typer.testing import CliRunner

    from tidings.cli.main import app

    found: dict[str, float] = {}

    def run(_server: uvicorn.Server, *_args: object, **_kwargs: object) -> None:
        found["interval"] = sys.getswitchinterval()

    monkeypatch.setattr(uvicorn.Server, "run", run)
    monkeypatch.setenv("TIDINGS_SERVER__SWITCH_INTERVAL_MS", "2.5")
    before = sys.getswitchinterval()
    try:
        result = CliRunner().invoke(
            app, ["serve", "--data", str(tmp_path), "--port", str(free_port())]
        )
    finally:
        sys.setswitchinterval(before)
        gc.unfreeze()  # serve freezes what it loaded; this process goes on running tests
    assert result.exit_code == 0, result.output
    assert found["interval"] == 0.0025
