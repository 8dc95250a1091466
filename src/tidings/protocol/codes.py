"""Stable error codes of the network core's JSON API.

Every error response is `{"error": {"code": <one of these>, "message": str, "details": {...}}}`.
Clients branch on `code`; the message is for people.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    VALIDATION_FAILED = "validation_failed"
    INVALID_PHONE_NUMBER = "invalid_phone_number"
    INVALID_CODE = "invalid_code"
    CODE_EXPIRED = "code_expired"
    VERIFICATION_UNAVAILABLE = "verification_unavailable"
    VERIFICATION_FAILED = "verification_failed"
    RATE_LIMITED = "rate_limited"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    UNKNOWN_ACCOUNT = "unknown_account"
    CONFLICT = "conflict"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    BAD_SIGNATURE = "bad_signature"
    STALE_DEVICE_LIST = "stale_device_list"
    INVALID_DEVICE_LIST = "invalid_device_list"
    DEVICE_LIMIT = "device_limit"
    MISMATCHED_DEVICES = "mismatched_devices"
    LINK_EXPIRED = "link_expired"
    LINK_STATE = "link_state"
    NO_DEVICE_LIST = "no_device_list"
    BLOCKED = "blocked"  # the recipient blocked the sender: nothing is filed
    INTERNAL = "internal_error"
