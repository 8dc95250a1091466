"""The outbound-request boundary: schemes, userinfo, every resolved address, redirects, pinning.

No external DNS here: literal IPs and `localhost` only.
"""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from tidings.errors import ValidationFailed
from tidings.outbound import (
    OutboundBlocked,
    OutboundPolicy,
    address_problem,
    check_url,
    read_limited,
    safe_http_client,
)

PRODUCTION = OutboundPolicy.production()
EMBEDDED = OutboundPolicy.embedded()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://93.184.216.34/x", "https"),
        ("file:///etc/passwd", "https"),
        ("gopher://93.184.216.34/", "https"),
        ("http://93.184.216.34/hook", "must use https"),
        ("https://user:secret@93.184.216.34/hook", "user name or password"),
        ("https://user@93.184.216.34/hook", "user name or password"),
        ("https:///no-host", "no host"),
        ("https://93.184.216.34:99999/", "not a valid URL"),
    ],
)
async def test_static_checks_refuse_bad_urls(url: str, reason: str) -> None:
    with pytest.raises(ValidationFailed, match=reason):
        await check_url(url, PRODUCTION)


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("[::1]", "loopback"),
        ("localhost", "loopback"),
        ("2130706433", "loopback"),  # 127.0.0.1 as a bare integer: resolves like one
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata service
        ("[fe80::1]", "link-local"),
        ("100.64.0.1", "CGNAT"),
        ("100.127.255.254", "CGNAT"),
        ("0.0.0.0", "unspecified"),
        ("[::]", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("[ff02::1]", "multicast"),
        ("240.0.0.1", "reserved|private"),
        ("[fc00::1]", "private"),
        ("[::ffff:10.0.0.1]", "private"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("[::ffff:169.254.169.254]", "link-local"),
        ("[2002:a00:1::]", "private"),  # 6to4 around 10.0.0.1
        ("[64:ff9b::a9fe:a9fe]", "link-local"),  # NAT64 around 169.254.169.254
    ],
)
async def test_production_refuses_non_public_addresses(host: str, kind: str) -> None:
    with pytest.raises(ValidationFailed, match=kind):
        await check_url(f"https://{host}/hook", PRODUCTION)


async def test_public_literal_addresses_pass() -> None:
    await check_url("https://93.184.216.34/hook", PRODUCTION)
    await check_url("https://[2606:2800:220:1:248:1893:25c8:1946]:8443/hook?x=1", PRODUCTION)


async def test_embedded_allows_http_and_loopback_but_not_the_rest_of_the_lan() -> None:
    await check_url("http://127.0.0.1:8080/hook", EMBEDDED)
    await check_url("http://localhost:8080/hook", EMBEDDED)
    await check_url("http://[::1]:8080/hook", EMBEDDED)
    with pytest.raises(ValidationFailed, match="private"):
        await check_url("http://192.168.1.10/hook", EMBEDDED)
    with pytest.raises(ValidationFailed, match="link-local"):
        await check_url("http://169.254.169.254/latest/meta-data", EMBEDDED)
    with pytest.raises(ValidationFailed, match="unspecified"):
        await check_url("http://0.0.0.0:8080/", EMBEDDED)


async def test_allow_private_opens_everything_but_the_scheme_rules_stay() -> None:
    lan = OutboundPolicy(allow_http=True, allow_private=True)
    await check_url("http://10.0.0.5/hook", lan)
    await check_url("http://169.254.169.254/", lan)
    with pytest.raises(ValidationFailed, match="user name"):
        await check_url("http://a:b@10.0.0.5/hook", lan)


def test_every_category_has_a_reason() -> None:
    assert address_problem(ipaddress.ip_address("8.8.8.8"), PRODUCTION) is None
    assert address_problem(ipaddress.ip_address("2001:4860:4860::8888"), PRODUCTION) is None
    problem = address_problem(ipaddress.ip_address("::ffff:192.168.0.1"), PRODUCTION)
    assert problem is not None and "embedded in" in problem


def _recording_transport(seen: list[httpx.Request], status: int = 200) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if status in (301, 302, 307):
            return httpx.Response(status, headers={"Location": "http://127.0.0.1:9/elsewhere"})
        return httpx.Response(status, content=b"x" * 10_000)

    return httpx.MockTransport(handler)


async def test_client_rechecks_at_request_time() -> None:
    seen: list[httpx.Request] = []
    async with safe_http_client(PRODUCTION, _recording_transport(seen)) as client:
        with pytest.raises(OutboundBlocked, match="loopback"):
            await client.post("https://127.0.0.1/hook", content=b"{}")
        with pytest.raises(OutboundBlocked, match="must use https"):
            await client.post("http://93.184.216.34/hook", content=b"{}")
    assert seen == []  # nothing reached the wire


async def test_client_does_not_follow_redirects() -> None:
    seen: list[httpx.Request] = []
    async with safe_http_client(EMBEDDED, _recording_transport(seen, status=302)) as client:
        response = await client.get("http://localhost:8080/hook")
    assert response.status_code == 302
    assert len(seen) == 1


async def test_plain_http_is_pinned_to_the_checked_address() -> None:
    seen: list[httpx.Request] = []
    async with safe_http_client(EMBEDDED, _recording_transport(seen)) as client:
        await client.get("http://localhost:8080/hook?a=1")
    [request] = seen
    # The connection goes to the IP we checked; the name stays in the Host header.
    assert request.url.host in ("127.0.0.1", "::1")
    assert request.url.port == 8080 and request.url.query == b"a=1"
    assert request.headers["host"] == "localhost:8080"


async def test_https_keeps_the_name_for_certificate_checks() -> None:
    seen: list[httpx.Request] = []
    policy = OutboundPolicy(allow_loopback=True)
    async with safe_http_client(policy, _recording_transport(seen)) as client:
        await client.get("https://localhost:8443/hook")
    assert seen[0].url.host == "localhost"


async def test_responses_are_read_only_up_to_the_limit() -> None:
    seen: list[httpx.Request] = []
    async with (
        safe_http_client(EMBEDDED, _recording_transport(seen)) as client,
        client.stream("GET", "http://127.0.0.1:8080/") as response,
    ):
        assert len(await read_limited(response, 100)) == 100


def test_policy_presets() -> None:
    assert not PRODUCTION.allow_http and not PRODUCTION.allow_private
    assert not PRODUCTION.allow_loopback
    assert EMBEDDED.allow_http and EMBEDDED.allow_loopback and not EMBEDDED.allow_private


def test_httpcore_finds_sniffio_so_no_request_repeats_a_failed_import() -> None:
    # A missing sniffio made every httpx request search sys.path twice (~0.8 ms).
    import asyncio

    from httpcore._synchronization import current_async_library

    async def library() -> str:
        return current_async_library()

    assert _importable("sniffio")
    assert asyncio.run(library()) == "asyncio"


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True
