"""Request and response bodies of the network core's HTTP API (`/v1/...`).

Binary values (keys, signatures, ciphertext) travel as standard base64 strings. Phone numbers
are E.164. Device ids are small integers unique within an account and never reused.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Limits that both sides enforce. The server is the authority; clients check early.
MAX_ENVELOPE_BYTES = 64 * 1024  # base64 text of one envelope body
MAX_ENVELOPES_PER_SEND = 16
MAX_SENDS_PER_BATCH = 100
MAX_RECEIPTS_PER_FRAME = 100  # receipts riding on one websocket ack frame
MAX_FRAME_REF = 64
MAX_ONE_TIME_KEYS = 50
MAX_COMPANIONS = 4
MAX_MESSAGE_ID = 64
MAX_DEVICE_NAME = 64
KEY_B64_MAX = 64  # a 32-byte key is 43-44 base64 characters
SIG_B64_MAX = 100  # a 64-byte signature is 86-88 base64 characters

B64Key = Field(min_length=40, max_length=KEY_B64_MAX)
B64Sig = Field(min_length=80, max_length=SIG_B64_MAX)


class Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- errors -----------------------------------------------------------------------------------


class ErrorBody(Wire):
    code: str
    message: str
    details: dict[str, object] = Field(default_factory=dict)


class ErrorResponse(Wire):
    error: ErrorBody


# --- keys -------------------------------------------------------------------------------------


class OneTimeKey(Wire):
    """A Curve25519 one-time (or fallback) key, signed by its device's Ed25519 key."""

    key_id: str = Field(min_length=1, max_length=32)
    key: str = B64Key
    signature: str = B64Sig


class DeviceKeys(Wire):
    """What a new device publishes about itself."""

    name: str = Field(default="", max_length=MAX_DEVICE_NAME)
    identity_key: str = B64Key  # Curve25519, vodozemac Account.curve25519_key
    signing_key: str = B64Key  # Ed25519, vodozemac Account.ed25519_key
    one_time_keys: list[OneTimeKey] = Field(default_factory=list, max_length=MAX_ONE_TIME_KEYS)
    fallback_key: OneTimeKey | None = None


class UploadKeysRequest(Wire):
    one_time_keys: list[OneTimeKey] = Field(default_factory=list, max_length=MAX_ONE_TIME_KEYS)
    fallback_key: OneTimeKey | None = None


class KeyStatus(Wire):
    one_time_key_count: int
    fallback_key_used: bool
    has_fallback_key: bool


class ClaimKeysRequest(Wire):
    phone: str = Field(max_length=32)
    device_ids: list[int] | None = Field(default=None, max_length=MAX_COMPANIONS + 1)


class ClaimedKey(Wire):
    key_id: str
    key: str
    signature: str
    fallback: bool


class ClaimedDevice(Wire):
    device_id: int
    identity_key: str
    signing_key: str
    one_time_key: ClaimedKey | None


class ClaimKeysResponse(Wire):
    phone: str
    devices: list[ClaimedDevice]


# --- device lists -----------------------------------------------------------------------------


class SignedDeviceList(Wire):
    """A device list signed by the account key.

    `payload` is base64 of canonical JSON `{"account", "version", "timestamp", "devices":
    [{"device_id", "identity_key", "signing_key"}]}`; `signature` is the account key's Ed25519
    signature over the domain prefix followed by those payload bytes (see tidings.crypto).
    """

    payload: str = Field(min_length=1, max_length=8192)
    signature: str = B64Sig


class DeviceInfo(Wire):
    device_id: int
    identity_key: str
    signing_key: str
    primary: bool
    name: str | None = None  # only shown to the account's own devices
    created_at: str | None = None
    last_seen_at: str | None = None


class BusinessProfile(Wire):
    """What the platform vouches for about a business number: its verified name."""

    phone: str
    verified_name: str


class DeviceListResponse(Wire):
    phone: str
    account_key: str
    signed_list: SignedDeviceList | None
    devices: list[DeviceInfo]


class PublishDeviceListRequest(Wire):
    signed_list: SignedDeviceList


# --- registration -----------------------------------------------------------------------------


class VerificationRequest(Wire):
    phone: str = Field(max_length=32)


class VerificationRequested(Wire):
    phone: str
    expires_in: int


class RegisterRequest(Wire):
    phone: str = Field(max_length=32)
    code: str = Field(min_length=4, max_length=16)
    account_key: str = B64Key  # Ed25519 public key that signs this account's device lists
    device: DeviceKeys


class RegisterResponse(Wire):
    phone: str
    device_id: int
    device_token: str


class WhoAmI(Wire):
    phone: str
    device_id: int
    primary: bool
    account_key: str


# --- linking a companion ----------------------------------------------------------------------


class LinkCreated(Wire):
    link_id: str
    expires_at: str


class LinkJoinRequest(Wire):
    device: DeviceKeys
    proof: str = Field(min_length=40, max_length=100)  # HMAC(link secret, join payload), base64


class LinkJoined(Wire):
    device_id: int
    device_token: str
    phone: str


class LinkApproveRequest(Wire):
    signed_list: SignedDeviceList
    account_key: str = B64Key
    proof: str = Field(min_length=40, max_length=100)  # HMAC(link secret, approval payload)


LinkStatus = Literal["waiting", "joined", "approved", "rejected", "expired"]


class LinkState(Wire):
    link_id: str
    status: LinkStatus
    expires_at: str
    # Set once a companion has joined (shown to the primary):
    device_id: int | None = None
    device: DeviceKeys | None = None
    join_proof: str | None = None
    # Set once the primary has approved (shown to the companion):
    signed_list: SignedDeviceList | None = None
    account_key: str | None = None
    approve_proof: str | None = None


# --- messages and mailboxes -------------------------------------------------------------------


class OutgoingEnvelope(Wire):
    phone: str = Field(max_length=32)  # the recipient's account, or the sender's own
    device_id: int
    type: Literal[0, 1]  # Olm: 0 pre-key message, 1 normal message
    body: str = Field(min_length=1, max_length=MAX_ENVELOPE_BYTES)


class SendRequest(Wire):
    message_id: str = Field(min_length=1, max_length=MAX_MESSAGE_ID, pattern=r"^[A-Za-z0-9._:-]+$")
    to: str = Field(max_length=32)
    envelopes: list[OutgoingEnvelope] = Field(min_length=1, max_length=MAX_ENVELOPES_PER_SEND)


class SendResponse(Wire):
    message_id: str
    server_ts: int
    delivered_to: int


class SendBatchRequest(Wire):
    """Several sends in one request (a business's API device delivering a queue): filed in
    order, each accepted or refused on its own as if posted alone."""

    sends: list[SendRequest] = Field(min_length=1, max_length=MAX_SENDS_PER_BATCH)


class SendOutcome(Wire):
    """One send of a batch: its response, or the error (and HTTP status) it would have got."""

    sent: SendResponse | None = None
    error: ErrorBody | None = None
    status: int | None = None


class SendBatchResponse(Wire):
    results: list[SendOutcome]


class DeviceMismatch(Wire):
    missing: list[int] = Field(default_factory=list)
    extra: list[int] = Field(default_factory=list)
    stale: list[int] = Field(default_factory=list)


ReceiptType = Literal["delivered", "read"]


class ReceiptRequest(Wire):
    to: str = Field(max_length=32)  # the account that sent the messages
    type: ReceiptType
    message_ids: list[str] = Field(min_length=1, max_length=100)


EnvelopeKind = Literal["message", "receipt", "device_list"]


class Envelope(Wire):
    """One item in a device's mailbox."""

    seq: int
    kind: EnvelopeKind
    message_id: str
    sender: str
    sender_device: int
    type: int  # Olm message type for kind=message; 0 otherwise
    body: str  # base64 ciphertext for messages; base64 JSON for receipts and notices
    server_ts: int


class MailboxPage(Wire):
    envelopes: list[Envelope]
    more: bool
    one_time_key_count: int
    # The device's whole key status on the first page of a sync (`after=0`), so a client
    # needs no separate key-status request to learn whether to refill or rotate.
    keys: KeyStatus | None = None


class AckRequest(Wire):
    seqs: list[int] = Field(min_length=1, max_length=1000)


class AckResponse(Wire):
    deleted: int


class AckFrame(Wire):
    """A device's `ack` frame on its websocket: envelopes to delete and, riding along, the
    receipts that processing them queued, filed in the same unit of work. `ref` is echoed in
    the `acked` reply, which tells the device its receipts were filed (or refused) and may
    leave its outbox."""

    seqs: list[int] = Field(default_factory=list, max_length=1000)
    receipts: list[ReceiptRequest] = Field(default_factory=list, max_length=MAX_RECEIPTS_PER_FRAME)
    ref: str | None = Field(default=None, max_length=MAX_FRAME_REF)

    @model_validator(mode="after")
    def _not_empty(self) -> AckFrame:
        if not self.seqs and not self.receipts:
            raise ValueError("an ack frame needs seqs or receipts")
        return self


class ReceiptBody(Wire):
    """Server-visible body of a receipt envelope: who acknowledged what."""

    type: ReceiptType
    message_ids: list[str]
    by: str
    by_device: int


class DeviceListNotice(Wire):
    """Body of a device_list envelope: an account's device list changed."""

    phone: str
    version: int


class BlockList(BaseModel):
    """`GET /v1/blocks`: the numbers this account refuses envelopes from."""

    blocked: list[str]
