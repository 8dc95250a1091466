"""The benchmark harness works: every scenario runs end to end in its tiny configuration and
writes its JSON report. Figures are never asserted (the machine is shared); only that each
scenario measured what it claims, beside its baseline, and judged its target."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# One worker runs the whole module: its scenarios run once, in the module's fixture.
pytestmark = pytest.mark.xdist_group("bench")

SCENARIOS = ("accept", "e2e", "sustained", "connections", "inbound", "crypto")
TARGETS = {"accept", "e2e", "sustained", "connections", "crypto"}  # inbound has none


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Run the scenarios side by side (each starts its own servers on free ports)."""
    results = tmp_path_factory.mktemp("bench-results")
    env = dict(os.environ, TIDINGS_BENCH_RESULTS=str(results))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    runs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "bench", name, "--size", "tiny"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for name in SCENARIOS
    }
    outputs = {name: run.communicate(timeout=240)[0].decode() for name, run in runs.items()}
    for name, run in runs.items():
        assert run.returncode == 0, f"{name} failed:\n{outputs[name]}"
    return {name: json.loads((results / f"{name}-tiny.json").read_text()) for name in SCENARIOS}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", SCENARIOS)
def test_each_scenario_reports_its_figures_beside_a_baseline(reports, name: str) -> None:
    report = reports[name]
    assert report["scenario"] == name
    assert report["size"] == "tiny" and report["store"] == "sqlite"
    assert report["command"] == f"python -m bench {name} --size tiny"
    assert report["rows"], "a table with at least one row"
    for row in report["rows"]:
        assert set(row) == {"metric", "tidings", "baseline"}
        assert row["metric"] and row["tidings"] != ""
    assert any(row["baseline"] for row in report["rows"]), "the baseline was measured"
    if name in TARGETS:
        [target] = report["targets"]
        assert target["name"] == name and isinstance(target["held"], bool)
        assert target["goal"] and target["value"]
    else:
        assert report["targets"] == []


@pytest.mark.timeout(300)
def test_the_scenarios_really_drove_the_servers(reports) -> None:
    accept = reports["accept"]["figures"]
    for side in ("tidings", "baseline"):
        assert accept[side]["ok"] == accept[side]["requests"] == 64  # every send was accepted
        assert accept[side]["latency_ms"]["count"] == 64
    e2e = reports["e2e"]["figures"]
    assert e2e["tidings"]["send"]["ok"] == 40 and e2e["tidings"]["latency_ms"]["count"] > 0
    assert e2e["baseline"]["latency_ms"]["count"] == 80  # 40 messages to two sockets
    sustained = reports["sustained"]["figures"]
    assert sustained["tidings"]["send"]["ok"] == 20 and sustained["tidings"]["backlog"]
    # The backlog counts every accepted send, to the last sample (the load generator's final
    # status once read as none accepted, so the backlog looked drained at once).
    assert sustained["tidings"]["backlog"][-1]["accepted"] == 20
    assert sustained["tidings"]["cpu_seconds"] > 0
    # The server's own record of where each message stopped: all 22 (20 and 2 warm-ups) read.
    recorded = sustained["server_outbound_statuses"]
    assert recorded == {"by_status": {"read": 22}, "unread_sample": []}
    connections = reports["connections"]["figures"]
    assert connections["connections"] == 10
    for side in ("tidings", "baseline"):
        assert connections[side]["push_ms"]["count"] == 10  # the push reached every socket
        assert connections[side]["rss_after_kb"] > 0
    assert connections["tidings_device_each"]["rss_after_kb"] > 0  # a device per connection
    inbound = reports["inbound"]["figures"]
    assert inbound["tidings"]["send"]["sent"] == 6  # every customer message became a webhook
    crypto = reports["crypto"]["figures"]
    assert crypto["raw_vodozemac_us"] > 0 and crypto["send_path_us_per_device"] > 0
