"""Registration: phone numbers, one-time codes, lock-outs, the SMS provider, credentials."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest
from core_helpers import device_keys, error_code, register

from tidings.crypto import AccountKey, DeviceCrypto

ALICE = "+15550100001"


def registration(phone: str, code: str) -> dict[str, object]:
    return {
        "phone": phone,
        "code": code,
        "account_key": AccountKey.generate().public_b64,
        "device": device_keys(DeviceCrypto.create()),
    }


def account_count(client: httpx.Client, token: str | None = None) -> int:
    response = client.get(
        f"/v1/accounts/{ALICE}/devices", headers={"Authorization": f"Bearer {token}"}
    )
    return len(response.json().get("devices", [])) if response.status_code == 200 else 0


def test_register_normalises_the_number_and_issues_hashed_credentials(server, invite) -> None:
    code = invite("+1 (555) 010-0001")
    with httpx.Client(base_url=server.url) as client:
        alice = register(client, "+1 555 010 0001", code)
        assert alice.phone == ALICE
        me = client.get("/v1/whoami", headers=alice.headers).json()
        assert me == {
            "phone": ALICE,
            "device_id": 1,
            "primary": True,
            "account_key": alice.account_key.public_b64,
        }
    # The token is stored only as a hash.
    raw = _dump_database(server)
    assert alice.token not in raw
    assert code not in raw


def test_invalid_phone_numbers_are_refused_clearly(server) -> None:
    with httpx.Client(base_url=server.url) as client:
        for bad in ["12", "+1555", "not a number", "+999123456789"]:
            response = client.post("/v1/accounts", json=registration(bad, "123456"))
            assert response.status_code == 400
            assert error_code(response) == "invalid_phone_number"


def test_a_code_is_single_use_and_bound_to_its_number(server, invite) -> None:
    code = invite(ALICE)
    with httpx.Client(base_url=server.url) as client:
        other = client.post("/v1/accounts", json=registration("+15550100002", code))
        assert error_code(other) == "invalid_code"
        first = client.post("/v1/accounts", json=registration(ALICE, code))
        assert first.status_code == 201
        replay = client.post("/v1/accounts", json=registration(ALICE, code))
        assert replay.status_code == 400
        assert error_code(replay) == "invalid_code"
        # The replay changed nothing: the first device still works.
        token = first.json()["device_token"]
        assert (
            client.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"}).status_code
            == 200
        )


def test_codes_expire(server, invite) -> None:
    code = invite(ALICE)
    server.clock.advance(timedelta(days=7, seconds=1))
    with httpx.Client(base_url=server.url) as client:
        response = client.post("/v1/accounts", json=registration(ALICE, code))
        assert response.status_code == 400
        assert error_code(response) == "code_expired"


def test_wrong_codes_lock_the_number_out_for_a_while(server, invite) -> None:
    code = invite(ALICE)
    with httpx.Client(base_url=server.url) as client:
        for _ in range(5):
            wrong = client.post("/v1/accounts", json=registration(ALICE, "000000"))
            assert error_code(wrong) in {"invalid_code"}
        locked = client.post("/v1/accounts", json=registration(ALICE, code))
        assert locked.status_code == 429
        assert error_code(locked) == "rate_limited"
        assert int(locked.headers["Retry-After"]) > 0
        server.clock.advance(timedelta(hours=1))
        assert client.post("/v1/accounts", json=registration(ALICE, code)).status_code == 201


def test_malformed_registration_requests_change_nothing(server, invite) -> None:
    code = invite(ALICE)
    good = registration(ALICE, code)
    broken = [
        b"{not json",
        json.dumps({**good, "device": {**good["device"], "identity_key": "short"}}).encode(),
        json.dumps({**good, "unexpected": 1}).encode(),
        json.dumps({k: v for k, v in good.items() if k != "account_key"}).encode(),
        json.dumps(
            {**good, "device": {**good["device"], "one_time_keys": [], "fallback_key": None}}
        ).encode(),
    ]
    with httpx.Client(base_url=server.url) as client:
        for body in broken:
            response = client.post(
                "/v1/accounts", content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code == 400, response.text
            assert error_code(response) == "validation_failed"
        # The code was not spent by any of them.
        assert client.post("/v1/accounts", json=good).status_code == 201


def test_forged_one_time_key_signatures_are_refused(server, invite) -> None:
    code = invite(ALICE)
    body = registration(ALICE, code)
    keys = body["device"]["one_time_keys"]
    keys[0] = {**keys[0], "key": body["device"]["identity_key"]}
    with httpx.Client(base_url=server.url) as client:
        response = client.post("/v1/accounts", json=body)
        assert response.status_code == 400
        assert error_code(response) == "bad_signature"


def test_re_registration_replaces_every_old_device(server, invite) -> None:
    with httpx.Client(base_url=server.url) as client:
        old = register(client, ALICE, invite(ALICE))
        new = register(client, ALICE, invite(ALICE))
        assert new.device_id == old.device_id + 1  # ids are never reused
        assert client.get("/v1/whoami", headers=old.headers).status_code == 401
        listing = client.get(f"/v1/accounts/{ALICE}/devices", headers=new.headers).json()
        assert [d["device_id"] for d in listing["devices"]] == [new.device_id]
        assert listing["account_key"] == new.account_key.public_b64


def test_requests_without_valid_credentials_are_unauthorized(server) -> None:
    with httpx.Client(base_url=server.url) as client:
        for headers in [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}]:
            response = client.get("/v1/mailbox", headers=headers)
            assert response.status_code == 401
            assert error_code(response) == "unauthorized"


def test_operator_only_servers_refuse_sms_requests(server) -> None:
    with httpx.Client(base_url=server.url) as client:
        response = client.post("/v1/verification", json={"phone": ALICE})
        assert response.status_code == 403
        assert error_code(response) == "verification_unavailable"


class _Gateway(BaseHTTPRequestHandler):
    received: list[dict[str, object]] = []
    status = 200

    def do_POST(self) -> None:
        length = int(self.headers["content-length"])
        type(self).received.append(
            {"body": json.loads(self.rfile.read(length)), "auth": self.headers.get("authorization")}
        )
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def sms_gateway():
    """A stand-in for the operator's SMS gateway: the outer edge of the system."""
    _Gateway.received = []
    _Gateway.status = 200
    httpd = HTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/send", _Gateway
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def sms_server(settings, clock, sms_gateway):
    from conftest import RunningServer, ServerThread
    from tidings.runtime import build_runtime

    url, _gateway = sms_gateway
    configured = settings.model_copy(
        update={
            "verification": settings.verification.model_copy(
                update={"provider": "http", "http_url": url, "http_token": "gw-secret"}
            )
        }
    )
    runtime = build_runtime(configured, clock=clock)
    thread = ServerThread(runtime)
    thread.start()
    yield RunningServer(f"http://127.0.0.1:{thread.port}", runtime, configured, clock)
    thread.stop()


def test_sms_provider_posts_codes_to_the_gateway_and_limits_requests(
    sms_server, sms_gateway
) -> None:
    _url, gateway = sms_gateway
    with httpx.Client(base_url=sms_server.url) as client:
        response = client.post("/v1/verification", json={"phone": "+1 555 010 0001"})
        assert response.status_code == 202
        assert response.json() == {"phone": ALICE, "expires_in": 600}
        sent = gateway.received[-1]
        assert sent["auth"] == "Bearer gw-secret"
        assert sent["body"]["to"] == ALICE
        code = sent["body"]["code"]
        assert client.post("/v1/accounts", json=registration(ALICE, code)).status_code == 201
        for _ in range(2):
            assert client.post("/v1/verification", json={"phone": ALICE}).status_code == 202
        limited = client.post("/v1/verification", json={"phone": ALICE})
        assert limited.status_code == 429
        assert len(gateway.received) == 3


def test_sms_gateway_failures_are_reported_and_leave_no_code(sms_server, sms_gateway) -> None:
    _url, gateway = sms_gateway
    gateway.status = 500
    with httpx.Client(base_url=sms_server.url) as client:
        response = client.post("/v1/verification", json={"phone": ALICE})
        assert response.status_code == 502
        assert error_code(response) == "verification_failed"
        code = gateway.received[-1]["body"]["code"]
        refused = client.post("/v1/accounts", json=registration(ALICE, code))
        assert error_code(refused) == "invalid_code"


def _dump_database(server) -> str:
    """Every text and binary value in every table, as one string."""
    import asyncio

    from sqlalchemy import text

    from tidings.runtime import build_runtime
    from tidings.schema import metadata

    async def dump() -> str:
        runtime = build_runtime(server.settings, clock=server.clock)
        chunks: list[str] = []
        try:
            async with runtime.database.read_only() as uow:
                for table in metadata.sorted_tables:
                    rows = await uow.session.execute(text(f'SELECT * FROM "{table.name}"'))
                    for row in rows:
                        chunks.extend(
                            v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in row
                        )
        finally:
            await runtime.close()
        return "\n".join(chunks)

    return asyncio.run(dump())
