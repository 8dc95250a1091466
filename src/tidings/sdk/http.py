"""The network core's HTTP API as typed async calls (request and response types from
tidings.protocol.api). Every failure becomes an `SdkError` carrying the server's error code."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from tidings.protocol import api
from tidings.protocol.attachments import AttachmentUploaded
from tidings.sdk import errors
from tidings.sdk.errors import SdkError

Model = TypeVar("Model", bound=BaseModel)

DEFAULT_TIMEOUT = 30.0
# Files of up to 100 MB take longer than a JSON call.
ATTACHMENT_TIMEOUT = 300.0
# Long polls are held by the server for up to `wait` seconds; allow for that plus slack.
LONG_POLL_SLACK = 15.0


def _phone_path(phone: str) -> str:
    return quote(phone, safe="")


class CoreRoute(Protocol):
    """The hot calls of a device that lives in the core's own process (a business's API
    device), answered by the core's services without HTTP. Each call authenticates `token`
    as the HTTP routes do and fails with the `SdkError` the HTTP answer would have given."""

    async def send_batch(
        self, token: str, requests: list[api.SendRequest]
    ) -> list[api.SendResponse | SdkError]: ...

    async def mailbox(self, token: str, after: int, limit: int) -> api.MailboxPage: ...

    async def ack(self, token: str, seqs: list[int]) -> int: ...

    async def receipt(self, token: str, request: api.ReceiptRequest) -> int: ...


class ServerApi:
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=DEFAULT_TIMEOUT, transport=transport
        )
        # Set for a device in the core's process: its busiest calls skip HTTP altogether.
        self.core_route: CoreRoute | None = None

    def _route(self) -> tuple[CoreRoute, str] | None:
        if self.core_route is None or not self.token:
            return None
        return self.core_route, self.token

    async def close(self) -> None:
        await self._http.aclose()

    @property
    def ws_url(self) -> str:
        if self.base_url.startswith("https://"):
            return "wss://" + self.base_url.removeprefix("https://") + "/v1/ws"
        return "ws://" + self.base_url.removeprefix("http://") + "/v1/ws"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def _call(
        self,
        method: str,
        path: str,
        model: type[Model],
        *,
        body: BaseModel | None = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Model:
        try:
            response = await self._http.request(
                method,
                path,
                content=body.model_dump_json() if body is not None else None,
                headers={**self.auth_headers(), "Content-Type": "application/json"},
                params=params,
                timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
            )
        except httpx.TimeoutException as exc:
            raise SdkError(errors.TIMEOUT, f"{method} {path} timed out") from exc
        except httpx.TransportError as exc:
            raise SdkError(
                errors.NETWORK_ERROR, f"cannot reach {self.base_url}: {exc or type(exc).__name__}"
            ) from exc
        if response.is_error:
            raise error_from(response)
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise SdkError(
                errors.PROTOCOL_ERROR, f"unexpected response to {method} {path}: {exc}"
            ) from exc

    # -- accounts and keys ------------------------------------------------------------------

    async def register(self, request: api.RegisterRequest) -> api.RegisterResponse:
        return await self._call("POST", "/v1/accounts", api.RegisterResponse, body=request)

    async def whoami(self) -> api.WhoAmI:
        return await self._call("GET", "/v1/whoami", api.WhoAmI)

    async def upload_keys(self, request: api.UploadKeysRequest) -> api.KeyStatus:
        return await self._call("PUT", "/v1/keys", api.KeyStatus, body=request)

    async def key_status(self) -> api.KeyStatus:
        return await self._call("GET", "/v1/keys", api.KeyStatus)

    async def claim_keys(self, phone: str, device_ids: list[int]) -> api.ClaimKeysResponse:
        request = api.ClaimKeysRequest(phone=phone, device_ids=device_ids)
        return await self._call("POST", "/v1/keys/claim", api.ClaimKeysResponse, body=request)

    async def device_list(self, phone: str) -> api.DeviceListResponse:
        path = f"/v1/accounts/{_phone_path(phone)}/devices"
        return await self._call("GET", path, api.DeviceListResponse)

    async def business_profile(self, phone: str) -> api.BusinessProfile:
        path = f"/v1/business-profiles/{_phone_path(phone)}"
        return await self._call("GET", path, api.BusinessProfile)

    async def publish_device_list(self, signed: api.SignedDeviceList) -> int:
        request = api.PublishDeviceListRequest(signed_list=signed)
        result = await self._call("PUT", "/v1/devices/list", _Version, body=request)
        return result.version

    # -- blocks -----------------------------------------------------------------------------

    async def block(self, phone: str) -> list[str]:
        path = f"/v1/blocks/{_phone_path(phone)}"
        return (await self._call("PUT", path, api.BlockList)).blocked

    async def unblock(self, phone: str) -> list[str]:
        path = f"/v1/blocks/{_phone_path(phone)}"
        return (await self._call("DELETE", path, api.BlockList)).blocked

    async def blocked(self) -> list[str]:
        return (await self._call("GET", "/v1/blocks", api.BlockList)).blocked

    # -- linking ----------------------------------------------------------------------------

    async def open_link(self) -> api.LinkCreated:
        return await self._call("POST", "/v1/links", api.LinkCreated)

    async def join_link(self, link_id: str, request: api.LinkJoinRequest) -> api.LinkJoined:
        return await self._call("POST", f"/v1/links/{link_id}/join", api.LinkJoined, body=request)

    async def link_state(
        self, link_id: str, *, wait: float = 0, since: str | None = None
    ) -> api.LinkState:
        params: dict[str, Any] = {"wait": wait}
        if since is not None:
            params["since"] = since
        return await self._call(
            "GET",
            f"/v1/links/{link_id}",
            api.LinkState,
            params=params,
            timeout=wait + LONG_POLL_SLACK,
        )

    async def approve_link(self, link_id: str, request: api.LinkApproveRequest) -> api.LinkState:
        return await self._call("POST", f"/v1/links/{link_id}/approve", api.LinkState, body=request)

    async def cancel_link(self, link_id: str) -> api.LinkState:
        return await self._call("DELETE", f"/v1/links/{link_id}", api.LinkState)

    # -- messages ---------------------------------------------------------------------------

    async def send(self, request: api.SendRequest) -> api.SendResponse:
        return await self._call("POST", "/v1/messages", api.SendResponse, body=request)

    async def send_batch(
        self, requests: list[api.SendRequest]
    ) -> list[api.SendResponse | SdkError]:
        """Post several sends at once (in chunks the server accepts); each comes back sent or
        with the error it would have had alone. A failure of the request itself raises."""
        results: list[api.SendResponse | SdkError] = []
        route = self._route()
        for chunk in _chunks(requests):
            if route is not None:
                results.extend(await route[0].send_batch(route[1], chunk))
                continue
            try:
                response = await self._call(
                    "POST",
                    "/v1/messages/batch",
                    api.SendBatchResponse,
                    body=api.SendBatchRequest(sends=chunk),
                )
            except SdkError as exc:
                if len(chunk) == 1 or exc.status not in (400, 413, 422):
                    raise
                # One malformed send refuses the whole request: post them one by one, so only
                # that one is refused.
                results.extend([await self._send_alone(request) for request in chunk])
                continue
            if len(response.results) != len(chunk):
                raise SdkError(errors.PROTOCOL_ERROR, "the batch answer does not match the batch")
            for outcome in response.results:
                if outcome.sent is not None:
                    results.append(outcome.sent)
                else:
                    error = outcome.error or api.ErrorBody(code="http_error", message="refused")
                    results.append(
                        SdkError(error.code, error.message, outcome.status, dict(error.details))
                    )
        return results

    async def _send_alone(self, request: api.SendRequest) -> api.SendResponse | SdkError:
        try:
            return await self.send(request)
        except SdkError as exc:
            if exc.status is None or exc.status >= 500:
                raise
            return exc

    async def receipt(self, request: api.ReceiptRequest) -> int:
        if (route := self._route()) is not None:
            return await route[0].receipt(route[1], request)
        return (await self._call("POST", "/v1/receipts", _Filed, body=request)).filed

    async def mailbox(self, after: int = 0, limit: int = 100) -> api.MailboxPage:
        if (route := self._route()) is not None:
            return await route[0].mailbox(route[1], after, limit)
        params = {"after": after, "limit": limit}
        return await self._call("GET", "/v1/mailbox", api.MailboxPage, params=params)

    async def ack(self, seqs: list[int]) -> int:
        request = api.AckRequest(seqs=seqs)
        if (route := self._route()) is not None:
            return await route[0].ack(route[1], request.seqs)
        return (await self._call("POST", "/v1/mailbox/ack", api.AckResponse, body=request)).deleted

    # -- attachments ------------------------------------------------------------------------

    async def upload_attachment(self, ciphertext: bytes) -> AttachmentUploaded:
        response = await self._raw(
            "POST",
            "/v1/attachments",
            content=ciphertext,
            headers={"Content-Type": "application/octet-stream"},
        )
        try:
            return AttachmentUploaded.model_validate_json(response.content)
        except ValidationError as exc:
            raise SdkError(errors.PROTOCOL_ERROR, f"unexpected upload response: {exc}") from exc

    async def download_attachment(self, attachment_id: str) -> bytes:
        path = f"/v1/attachments/{quote(attachment_id, safe='')}"
        return (await self._raw("GET", path)).content

    async def _raw(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        try:
            response = await self._http.request(
                method,
                path,
                content=content,
                headers={**self.auth_headers(), **(headers or {})},
                timeout=ATTACHMENT_TIMEOUT,
            )
        except httpx.TimeoutException as exc:
            raise SdkError(errors.TIMEOUT, f"{method} {path} timed out") from exc
        except httpx.TransportError as exc:
            raise SdkError(
                errors.NETWORK_ERROR, f"cannot reach {self.base_url}: {exc or type(exc).__name__}"
            ) from exc
        if response.is_error:
            raise error_from(response)
        return response


# Well under the server's default request limit (2 MB), whatever the envelopes weigh.
BATCH_BYTES = 1024 * 1024


def _chunks(requests: list[api.SendRequest]) -> list[list[api.SendRequest]]:
    chunks: list[list[api.SendRequest]] = []
    size = 0
    for request in requests:
        weight = sum(len(e.body) for e in request.envelopes) + 200 * len(request.envelopes)
        if not chunks or len(chunks[-1]) >= api.MAX_SENDS_PER_BATCH or size + weight > BATCH_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(request)
        size += weight
    return chunks


class _Version(BaseModel):
    version: int


class _Filed(BaseModel):
    filed: int


def error_from(response: httpx.Response) -> SdkError:
    """The server's `{"error": {...}}` envelope as an SdkError; anything else as http_error."""
    try:
        body = api.ErrorResponse.model_validate_json(response.content).error
    except ValidationError:
        text = response.text[:200] or response.reason_phrase
        return SdkError("http_error", f"HTTP {response.status_code}: {text}", response.status_code)
    return SdkError(body.code, body.message, response.status_code, dict(body.details))
