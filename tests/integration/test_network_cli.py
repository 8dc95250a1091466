"""The `tidings` device commands, driven through Typer against the real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from tidings.cli.main import app

ALICE = "+15550100001"
BOB = "+15550100002"


def test_register_send_and_listen_once_json(server, invite, tmp_path) -> None:
    runner = CliRunner()
    alice, bob = str(tmp_path / "alice"), str(tmp_path / "bob")
    for phone, profile in ((ALICE, alice), (BOB, bob)):
        result = runner.invoke(
            app,
            [
                "register",
                "--server",
                server.url,
                "--phone",
                phone,
                "--code",
                invite(phone),
                "--profile",
                profile,
                "--name",
                "phone",
            ],
        )
        assert result.exit_code == 0, result.output
        assert f"Registered {phone}" in result.stdout

    result = runner.invoke(app, ["whoami", "--profile", alice, "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["phone"] == ALICE

    result = runner.invoke(app, ["send", "--profile", alice, "--to", BOB, "hello from the cli"])
    assert result.exit_code == 0, result.output
    message_id = result.stdout.split()[-1]

    result = runner.invoke(app, ["listen", "--profile", bob, "--once", "--json", "--timeout", "5"])
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    printed = json.loads(line)
    assert {"id", "from", "from_device", "to", "text", "ts", "kind"} <= set(printed)
    assert (printed["kind"], printed["id"], printed["from"], printed["to"], printed["text"]) == (
        "message",
        message_id,
        ALICE,
        BOB,
        "hello from the cli",
    )

    # Bob's client sent a delivered receipt, and a read receipt once listen had printed the
    # message; Alice's listen prints both.
    result = runner.invoke(
        app, ["listen", "--profile", alice, "--once", "--json", "--timeout", "5"]
    )
    assert result.exit_code == 0, result.output
    receipts = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["kind"], r["type"], r["message_ids"], r["by"]) for r in receipts] == [
        ("receipt", "delivered", [message_id], BOB),
        ("receipt", "read", [message_id], BOB),
    ]

    result = runner.invoke(app, ["devices", "--profile", alice, "--json"])
    assert result.exit_code == 0 and [d["device_id"] for d in json.loads(result.stdout)] == [1]


def test_errors_print_the_code_and_exit_non_zero(server, invite, tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["send", "--profile", str(tmp_path / "nobody"), "--to", BOB, "x"])
    assert result.exit_code == 1
    assert "not_registered" in result.stderr
    result = runner.invoke(
        app,
        [
            "register",
            "--server",
            server.url,
            "--phone",
            ALICE,
            "--code",
            "000000",
            "--profile",
            str(tmp_path / "alice"),
        ],
    )
    assert result.exit_code == 1 and "invalid_code" in result.stderr


def test_link_show_join_and_remove(server, invite, tmp_path) -> None:
    """`link show` runs as a real process (it blocks until the companion joins)."""
    runner = CliRunner()
    alice, laptop = str(tmp_path / "alice"), str(tmp_path / "alice-laptop")
    register_args = ["register", "--server", server.url, "--phone", ALICE]
    result = runner.invoke(app, [*register_args, "--code", invite(ALICE), "--profile", alice])
    assert result.exit_code == 0, result.output

    show = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tidings.cli.main",
            "link",
            "show",
            "--profile",
            alice,
            "--timeout",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )
    try:
        assert show.stdout is not None
        code = None
        for line in show.stdout:
            if "tidings link join" in line:
                code = line.split("tidings link join", 1)[1].split()[0]
                break
        assert code, "link show printed no code"
        joined = runner.invoke(
            app,
            ["link", "join", code, "--server", server.url, "--profile", laptop, "--name", "laptop"],
        )
        assert joined.exit_code == 0, joined.output
        assert f"Linked to {ALICE} as device 2" in joined.stdout
        rest, errors = show.communicate(timeout=30)
        assert show.returncode == 0, errors
        assert "Linked device 2 (laptop)" in rest
    finally:
        if show.poll() is None:
            show.kill()
            show.wait()

    listed = runner.invoke(app, ["devices", "--profile", laptop, "--json"])
    assert [d["device_id"] for d in json.loads(listed.stdout)] == [1, 2]
    removed = runner.invoke(app, ["devices", "--profile", alice, "--remove", "2", "--json"])
    assert removed.exit_code == 0, removed.output
    assert [d["device_id"] for d in json.loads(removed.stdout)] == [1]
    cut_off = runner.invoke(app, ["whoami", "--profile", laptop])
    assert cut_off.exit_code == 1 and "unauthorized" in cut_off.stderr
