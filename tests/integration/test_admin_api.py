"""The operator's admin HTTP API: operator tokens from `tidings admin token`, the template
review queue (list, approve, reject with a reason, re-categorize) and template versions with
their diff, all over real HTTP against a server whose templates wait for a person."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from business_support import run_in_thread
from templates_support import Graph, body, file_three_for_review, start
from typer.testing import CliRunner

from tidings.cli.business import _create
from tidings.cli.main import app as tidings_cli
from tidings.runtime import build_runtime
from tidings.templates.review import ReviewSettings

ADMIN = "/admin/v1"


def cli(settings, *args: str):
    result = CliRunner().invoke(
        tidings_cli,
        [*args, "--data", str(settings.data_dir), "--db", settings.database_url],
    )
    return result


def operator_token(settings, label: str = "alice") -> dict[str, Any]:
    result = cli(settings, "admin", "token", "create", "--label", label, "--json")
    assert result.exit_code == 0, result.output
    issued: dict[str, Any] = json.loads(result.output)
    return issued


@pytest.fixture
def held(settings, clock):
    """A business whose templates wait for a person, its server, and an operator client."""
    made = run_in_thread(lambda: _create(settings, "Careful Co", "+15550109995"))
    runtime = build_runtime(settings, clock=clock)
    thread, server = start(
        runtime, settings, clock, review_settings=ReviewSettings(human_review="always")
    )
    graph = Graph(server.url, made.access_token, made.waba_id)
    issued = operator_token(settings)
    admin = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {issued['token']}"}, timeout=30
    )
    yield made, server, graph, admin
    admin.close()
    graph.close()
    thread.stop()


def core_error(response: httpx.Response) -> tuple[int, str]:
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}, error  # the core envelope
    assert error["message"]
    return response.status_code, error["code"]


def test_every_admin_route_needs_a_valid_operator_token(held, settings) -> None:
    made, server, graph, _admin = held
    pending = graph.create(body("shipping_notice")).json()
    routes = [
        ("GET", f"{ADMIN}/templates/review", None),
        ("GET", f"{ADMIN}/templates/{pending['id']}", None),
        ("POST", f"{ADMIN}/templates/{pending['id']}/approve", None),
        ("POST", f"{ADMIN}/templates/{pending['id']}/reject", {"explanation": "no"}),
        ("POST", f"{ADMIN}/templates/{pending['id']}/recategorize", {"category": "MARKETING"}),
        ("GET", f"{ADMIN}/templates/{pending['id']}/versions", None),
        ("GET", f"{ADMIN}/templates/{pending['id']}/versions/diff?from=1&to=1", None),
    ]
    revoked = operator_token(settings, "bob")
    assert cli(settings, "admin", "token", "revoke", str(revoked["id"])).exit_code == 0
    bad_headers = [
        {},
        {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer tdo_not-a-real-token"},
        {"Authorization": f"Bearer {made.access_token}"},  # a business token is no operator's
        {"Authorization": f"Bearer {revoked['token']}"},
    ]
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        for method, path, payload in routes:
            for headers in bad_headers:
                response = anonymous.request(method, path, json=payload, headers=headers)
                assert core_error(response) == (401, "unauthorized"), (path, headers)
    revoked_answer = httpx.get(
        f"{server.url}{ADMIN}/templates/review",
        headers={"Authorization": f"Bearer {revoked['token']}"},
    )
    assert "revoked" in revoked_answer.json()["error"]["message"]
    # Nothing changed: the template still waits.
    [still] = graph.list(fields="name,status").json()["data"]
    assert still["status"] == "PENDING"
    listed = cli(settings, "admin", "token", "list", "--json")
    tokens = [json.loads(line) for line in listed.output.splitlines()]
    assert [(t["label"], t["revoked"]) for t in tokens] == [("alice", False), ("bob", True)]
    assert all("token" not in t for t in tokens)  # only hashes are kept


def test_operators_work_the_review_queue_over_http(held) -> None:
    made, _server, graph, admin = held
    shipped, promo, doubtful = file_three_for_review(graph)

    queue = admin.get(f"{ADMIN}/templates/review").json()["data"]
    assert [q["name"] for q in queue] == ["shipping_notice", "order_followup", "account_notice"]
    followup = queue[1]
    assert (followup["filed_category"], followup["proposed_category"]) == ("UTILITY", "MARKETING")
    assert followup["classifier"]["MARKETING"] > 0.6 and followup["findings"]
    only_this_waba = admin.get(f"{ADMIN}/templates/review", params={"waba_id": "999"})
    assert only_this_waba.json() == {"data": []}

    approved = admin.post(f"{ADMIN}/templates/{shipped['id']}/approve")
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["approved_version"]) == ("APPROVED", 1)
    again = admin.post(f"{ADMIN}/templates/{shipped['id']}/approve")
    assert core_error(again) == (409, "conflict")

    for bad, problem in (
        ({}, "explanation"),
        ({"explanation": "  "}, "explanation"),
        ({"explanation": "Say which account.", "reason": "BECAUSE"}, "reason must be one of"),
    ):
        refused = admin.post(f"{ADMIN}/templates/{doubtful['id']}/reject", json=bad)
        assert core_error(refused) == (400, "validation_failed")
        assert problem in refused.json()["error"]["message"]
    not_json = admin.post(
        f"{ADMIN}/templates/{doubtful['id']}/reject",
        content=b"{nope",
        headers={"content-type": "application/json"},
    )
    assert core_error(not_json) == (400, "validation_failed")
    rejected = admin.post(
        f"{ADMIN}/templates/{doubtful['id']}/reject",
        json={"explanation": "Say which account.", "reason": "invalid_format"},
    )
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["status"], rejected.json()["rejected_reason"]) == (
        "REJECTED",
        "INVALID_FORMAT",
    )

    bad_category = admin.post(
        f"{ADMIN}/templates/{promo['id']}/recategorize", json={"category": "GOSSIP"}
    )
    assert core_error(bad_category) == (400, "validation_failed")
    moved = admin.post(
        f"{ADMIN}/templates/{promo['id']}/recategorize", json={"category": "utility"}
    )
    assert (moved.json()["category"], moved.json()["status"]) == ("UTILITY", "PENDING")
    assert admin.post(f"{ADMIN}/templates/{promo['id']}/approve").status_code == 200
    assert admin.get(f"{ADMIN}/templates/review").json() == {"data": []}
    missing = admin.post(f"{ADMIN}/templates/123456789/approve")
    assert core_error(missing) == (404, "not_found")

    statuses = graph.list(fields="name,status,category,rejected_reason").json()["data"]
    assert {s["name"]: (s["status"], s["category"], s["rejected_reason"]) for s in statuses} == {
        "shipping_notice": ("APPROVED", "UTILITY", "NONE"),
        "order_followup": ("APPROVED", "UTILITY", "NONE"),
        "account_notice": ("REJECTED", "UTILITY", "INVALID_FORMAT"),
    }
    [rejection] = [
        e for e in graph.events("message_template_status_update") if e["event"] == "REJECTED"
    ]
    assert rejection["rejection_info"]["reason"] == "Say which account."
    versions = admin.get(f"{ADMIN}/templates/{shipped['id']}/versions").json()["data"]
    assert [(v["version"], v["status"], v["decided_by"]) for v in versions] == [
        (1, "APPROVED", "operator:alice")
    ]
    assert made.waba_id == admin.get(f"{ADMIN}/templates/{shipped['id']}").json()["waba_id"]


def test_versions_and_their_diff_through_the_admin_api(held) -> None:
    _made, _server, graph, admin = held
    created = graph.create(body("pickup_notice")).json()
    assert admin.post(f"{ADMIN}/templates/{created['id']}/approve").status_code == 200
    edited = "Hi {{1}}, order {{2}} waits for you at the front desk until six."
    edit = {
        "components": [
            {"type": "BODY", "text": edited, "example": {"body_text": [["Ann", "A-9"]]}},
            {"type": "FOOTER", "text": "Acme pickup desk"},
        ]
    }
    assert graph.client.post(f"/v23.0/{created['id']}", json=edit).status_code == 200
    assert admin.post(f"{ADMIN}/templates/{created['id']}/approve").status_code == 200
    moved = admin.post(
        f"{ADMIN}/templates/{created['id']}/recategorize", json={"category": "MARKETING"}
    )
    assert (moved.json()["status"], moved.json()["version"]) == ("APPROVED", 3)

    versions = admin.get(f"{ADMIN}/templates/{created['id']}/versions").json()["data"]
    assert [(v["version"], v["status"], v["category"]) for v in versions] == [
        (1, "APPROVED", "UTILITY"),
        (2, "APPROVED", "UTILITY"),
        (3, "APPROVED", "MARKETING"),
    ]
    diff = admin.get(
        f"{ADMIN}/templates/{created['id']}/versions/diff", params={"from": 1, "to": 2}
    ).json()
    assert (diff["from_version"], diff["to_version"]) == (1, 2)
    changes = {c["path"]: c for c in diff["changes"]}
    assert changes["BODY.text"]["kind"] == "changed"
    assert changes["BODY.text"]["new"] == edited
    assert changes["FOOTER"]["kind"] == "added"
    assert "BODY.text changed from" in diff["summary"]
    recategorized = admin.get(
        f"{ADMIN}/templates/{created['id']}/versions/diff", params={"from": 2, "to": 3}
    ).json()
    assert recategorized["changes"] == [
        {
            "path": "category",
            "kind": "changed",
            "old": "UTILITY",
            "new": "MARKETING",
            "description": "category changed from 'UTILITY' to 'MARKETING'",
        }
    ]
    for params in ({"from": 1}, {"from": "one", "to": 2}, {"from": 0, "to": 1}):
        bad = admin.get(f"{ADMIN}/templates/{created['id']}/versions/diff", params=params)
        assert core_error(bad) == (400, "validation_failed"), params
    absent = admin.get(
        f"{ADMIN}/templates/{created['id']}/versions/diff", params={"from": 1, "to": 9}
    )
    assert core_error(absent) == (404, "not_found")
    assert "no version 9" in absent.json()["error"]["message"]
