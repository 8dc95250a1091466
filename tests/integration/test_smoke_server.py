from __future__ import annotations

import httpx


def test_health_and_error_envelope(server) -> None:
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        response = client.get("/v1/nope")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
