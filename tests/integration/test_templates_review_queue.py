"""Human review: templates held for a person are worked from `tidings templates review`
(list / approve / reject / recategorize) on the data folder; every decision queues its
webhook, the server delivers template webhooks signed to the WABA's endpoint, and pywa parses
them. A send only ever sees the approved version."""

from __future__ import annotations

import json

import business_support
import httpx
import pytest
import typer
from business_support import ToOurServer, run_in_thread
from pywa import WhatsApp, handlers
from templates_support import Graph, body, file_three_for_review, start
from typer.testing import CliRunner

from tidings.cli import templates as templates_cli
from tidings.cli.business import _create
from tidings.cli.templates import with_desk
from tidings.runtime import build_runtime
from tidings.templates.review import ReviewSettings

receiver = business_support.receiver


@pytest.fixture
def held(settings, clock, receiver):
    """A business whose templates wait for a person; its WABA webhooks go to `receiver`."""
    made = run_in_thread(lambda: _create(settings, "Careful Co", "+15550109996"))

    async def subscribe() -> None:
        runtime = build_runtime(settings)
        try:
            await runtime.webhooks.subscribe_app(made.waba_id, receiver.url, receiver.verify_token)
        finally:
            await runtime.close()

    run_in_thread(subscribe)
    runtime = build_runtime(settings, clock=clock)
    thread, server = start(
        runtime, settings, clock, review_settings=ReviewSettings(human_review="always")
    )
    graph = Graph(server.url, made.access_token, made.waba_id)
    yield made, server, graph
    graph.close()
    thread.stop()


def cli(settings, *args: str):
    app = typer.Typer()
    templates_cli.install(app)
    result = CliRunner().invoke(
        app,
        [
            "templates",
            "review",
            *args,
            "--data",
            str(settings.data_dir),
            "--db",
            settings.database_url,
        ],
    )
    return result


def test_the_review_queue_from_the_cli(held, settings, receiver) -> None:
    made, server, graph = held
    shipped, promo, doubtful = file_three_for_review(graph)
    assert [shipped["status"], promo["status"], doubtful["status"]] == ["PENDING"] * 3
    assert promo["category"] == "MARKETING"  # the classifier's proposal, for the reviewer

    listed = cli(settings, "list", "--json")
    assert listed.exit_code == 0, listed.output
    queue = [json.loads(line) for line in listed.output.splitlines()]
    assert [q["name"] for q in queue] == ["shipping_notice", "order_followup", "account_notice"]
    assert queue[1]["filed_category"] == "UTILITY" and queue[1]["proposed_category"] == "MARKETING"
    assert queue[1]["classifier"]["MARKETING"] > 0.6
    human = cli(settings, "list")
    assert "order_followup" in human.output and "category_check" in human.output

    assert cli(settings, "approve", shipped["id"]).exit_code == 0
    rejected = cli(
        settings,
        "reject",
        doubtful["id"],
        "--reason",
        "Say which account.",
        "--code",
        "INVALID_FORMAT",
    )
    assert rejected.exit_code == 0, rejected.output
    assert cli(settings, "recategorize", promo["id"], "--category", "utility").exit_code == 0
    assert cli(settings, "approve", promo["id"]).exit_code == 0
    again = cli(settings, "approve", promo["id"])
    assert again.exit_code != 0 and "not waiting for review" in again.output
    assert cli(settings, "list").output.strip() == "No templates are waiting for review."

    statuses = graph.list(fields="name,status,category,rejected_reason").json()["data"]
    assert {s["name"]: (s["status"], s["category"], s["rejected_reason"]) for s in statuses} == {
        "shipping_notice": ("APPROVED", "UTILITY", "NONE"),
        "order_followup": ("APPROVED", "UTILITY", "NONE"),  # the operator overruled
        "account_notice": ("REJECTED", "UTILITY", "INVALID_FORMAT"),
    }
    events = [
        (e["message_template_name"], e["event"])
        for e in graph.events("message_template_status_update")
    ]
    assert events == [
        ("shipping_notice", "PENDING"),
        ("order_followup", "PENDING"),
        ("account_notice", "PENDING"),
        ("shipping_notice", "APPROVED"),
        ("account_notice", "REJECTED"),
        ("order_followup", "APPROVED"),
    ]
    [rejection] = [
        e for e in graph.events("message_template_status_update") if e["event"] == "REJECTED"
    ]
    assert rejection["rejection_info"]["reason"] == "Say which account."
    # Held templates were announced to the WABA's endpoint, signed, and pywa reads them.
    wa = WhatsApp(
        phone_id=made.phone_number_id,
        token=made.access_token,
        session=httpx.Client(transport=ToOurServer(server.url)),
        app_secret=made.app_secret,
        waba_id=made.waba_id,
    )
    parsed = []
    wa.add_handlers(handlers.TemplateStatusUpdateHandler(lambda _c, u: parsed.append(u)))
    receiver.wait_for(lambda posts: len(posts) >= 3)
    for post in receiver.posts[:3]:
        assert wa.webhook_update_validator(post.body, post.signature) is None
        wa.webhook_update_handler(post.body)
    assert [(u.template_name, u.new_status.value) for u in parsed] == [
        ("shipping_notice", "PENDING"),
        ("order_followup", "PENDING"),
        ("account_notice", "PENDING"),
    ]
    assert str(parsed[0].template_id) == shipped["id"]


def test_sending_uses_the_approved_version_while_an_edit_waits(held, settings) -> None:
    made, _server, graph = held
    created = graph.create(body("pickup_notice")).json()
    assert cli(settings, "approve", created["id"]).exit_code == 0
    edited_text = "Hi {{1}}, order {{2}} waits for you at the front desk until six."
    edit = {
        "components": [
            {"type": "BODY", "text": edited_text, "example": {"body_text": [["Ann", "A-9"]]}}
        ]
    }
    assert graph.client.post(f"/v23.0/{created['id']}", json=edit).status_code == 200

    async def lookup(desk):
        return await desk.approved_for_sending(made.waba_id, "pickup_notice", "en_US")

    sendable = run_in_thread(lambda: with_desk(settings, lookup))
    assert (sendable.status, sendable.version) == ("PENDING", 1)
    assert "has shipped" in sendable.components[0]["text"]  # still the approved wording
    assert cli(settings, "approve", created["id"]).exit_code == 0
    sendable = run_in_thread(lambda: with_desk(settings, lookup))
    assert (sendable.status, sendable.version) == ("APPROVED", 2)
    assert sendable.components[0]["text"] == edited_text
    diff = graph.client.get(
        f"/v23.0/{created['id']}/versions/diff", params={"from_version": 1, "to_version": 2}
    ).json()
    assert "BODY.text changed" in diff["summary"]
    missing = run_in_thread(
        lambda: with_desk(
            settings, lambda d: d.approved_for_sending(made.waba_id, "pickup_notice", "pt_BR")
        )
    )
    assert missing is None
