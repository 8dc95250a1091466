# ruff: noqa: F811 - pytest fixtures imported from tui_support are named as parameters
"""`GET /v1/business-profiles/{phone}`: customers' clients learn a business's verified name."""

from __future__ import annotations

import httpx
from tui_support import (
    BUSINESS,
    CUSTOMER,
    clock,  # noqa: F401
    receiver,  # noqa: F401
    register_customer,
    shop,  # noqa: F401
)

from tidings.sdk import DeviceClient
from tidings.sdk.conversations import Conversations


async def test_verified_name_for_a_business_and_404_for_a_person(shop, tmp_path) -> None:
    _made, server = shop
    profile = await register_customer(server, tmp_path / "alice", first_words=None)
    client = await DeviceClient.open(profile)
    try:
        got = await client.api.business_profile(BUSINESS)
        assert (got.phone, got.verified_name) == (BUSINESS, "Acme Shop")
        chats = Conversations(client.store)
        assert (await chats.check_profile(client.api, BUSINESS)).verified_name == "Acme Shop"
        person = await chats.check_profile(client.api, CUSTOMER)
        assert person.profile_checked and person.verified_name is None
        headers = client.api.auth_headers()
    finally:
        await client.close()
    async with httpx.AsyncClient(base_url=server.url) as http:
        spaced = await http.get("/v1/business-profiles/+1 555 010 9999", headers=headers)
        assert spaced.json()["verified_name"] == "Acme Shop"
        nobody = await http.get("/v1/business-profiles/+15550100077", headers=headers)
        assert nobody.status_code == 404 and nobody.json()["error"]["code"] == "not_found"
        bad = await http.get("/v1/business-profiles/12", headers=headers)
        assert bad.status_code == 400 and "error" in bad.json()
        anonymous = await http.get(f"/v1/business-profiles/{BUSINESS}")
        assert anonymous.status_code == 401
