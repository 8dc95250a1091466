"""`tidings business consents`: the consent ledger as JSON evidence, for an operator."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from tidings.runtime import build_runtime

TIDINGS = [sys.executable, "-m", "tidings.cli.main"]
BUSINESS, CUSTOMER, OTHER = "+15550109999", "+15550100001", "+15550100002"


async def arrange(settings, clock) -> str:
    runtime = build_runtime(settings, clock=clock)
    try:
        made = await runtime.businesses.create("Acme", BUSINESS, phone_number_id="900100")
        phone = await runtime.businesses.phone_by_number_id(made.phone_number_id)
        await runtime.signals.record_consent(
            phone, CUSTOMER, category="MARKETING", action="opt_in", actor="web-form",
            wording="Offers on WhatsApp? Yes",
        )  # fmt: skip
        clock.advance(minutes=1)
        async with runtime.database.unit_of_work() as uow:
            stop = {"type": "text", "text": {"body": "Arrêt"}}
            await runtime.signals.inbound(uow, phone, CUSTOMER, stop, "wamid.in")
        await runtime.signals.record_consent(
            phone, OTHER, category="UTILITY", action="opt_out", actor="support", wording=None
        )
        return made.phone_number_id
    finally:
        await runtime.close()


def consents(settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TIDINGS, "business", "consents", *args, "--data", str(settings.data_dir),
         "--db", settings.database_url],
        capture_output=True, text=True,
    )  # fmt: skip


def test_the_ledger_exports_as_json_evidence(settings, clock) -> None:
    phone_number_id = asyncio.run(arrange(settings, clock))
    every = consents(settings, "--phone-number-id", phone_number_id)
    assert every.returncode == 0, every.stderr
    records = json.loads(every.stdout)["data"]
    assert [(r["wa_id"], r["action"], r["source"]) for r in records] == [
        ("15550100001", "opt_in", "api"),
        ("15550100001", "opt_out", "keyword"),
        ("15550100002", "opt_out", "api"),
    ]
    assert records[0]["wording"] == "Offers on WhatsApp? Yes"
    assert records[1]["detail"] == "fr:arret"
    one = consents(settings, "--phone-number-id", phone_number_id, "--wa-id", "15550100002")
    assert [r["category"] for r in json.loads(one.stdout)["data"]] == ["UTILITY"]
    page = consents(settings, "--phone-number-id", phone_number_id, "--after", records[0]["id"])
    assert len(json.loads(page.stdout)["data"]) == 2
    for bad in (["--phone-number-id", "424242"], ["--phone-number-id", phone_number_id,
                "--wa-id", "12"]):  # fmt: skip
        refused = consents(settings, *bad)
        assert refused.returncode != 0 and refused.stdout == "" and refused.stderr
