"""Errors the device SDK raises.

    SdkError                 every failure: a stable `code`, a message for people
     |                       (`status` and `details` are set when the server answered)
     +-- TrustError          a device list or key the server served failed verification
     +-- DeviceRemoved       this device was removed from its account (token revoked)

Server errors keep the server's code (see tidings.protocol.codes); failures found on the
client use the codes below.
"""

from __future__ import annotations

from typing import Any

from tidings.protocol.codes import ErrorCode

# Codes raised by the client itself (the server's codes are in tidings.protocol.codes).
NETWORK_ERROR = "network_error"
PROTOCOL_ERROR = "protocol_error"
NOT_REGISTERED = "not_registered"
PROFILE_EXISTS = "profile_exists"
NOT_PRIMARY = "not_primary"
UNTRUSTED_DEVICE_LIST = "untrusted_device_list"
DEVICE_LIST_ROLLBACK = "device_list_rollback"
ACCOUNT_KEY_CHANGED = "account_key_changed"
NO_KEYS = "no_keys"
TOO_LARGE = "payload_too_large"
DEVICE_REMOVED = "device_removed"
LINK_FAILED = "link_failed"
TIMEOUT = "timeout"


class SdkError(Exception):
    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details = details or {}


class TrustError(SdkError):
    """The server served something the account key does not vouch for; nothing was sent."""


class DeviceRemoved(SdkError):
    def __init__(self, message: str = "this device was removed from its account") -> None:
        super().__init__(DEVICE_REMOVED, message, status=401)


# Failures worth retrying later (an envelope stays unacknowledged, a receipt queued).
_TRANSIENT = (NETWORK_ERROR, TIMEOUT, ErrorCode.RATE_LIMITED, "http_error")


def is_passing(exc: SdkError) -> bool:
    """A failure worth another try: the network, a rate limit, or the server's own fault
    (any 5xx, whatever its code: a 500 or a proxy's 503 says nothing against the request)."""
    return exc.code in _TRANSIENT or (exc.status is not None and exc.status >= 500)
