"""The device SDK: a sealed key store, Olm sessions, signed device lists, send and receive.

It talks to the network core over HTTP and websockets only and never imports server code.
"""

from tidings.sdk.client import DeviceClient, DeviceSummary
from tidings.sdk.errors import DeviceRemoved, SdkError, TrustError
from tidings.sdk.events import (
    DeviceListChanged,
    Event,
    IncomingMessage,
    ReceiptEvent,
    SecurityNotice,
    StoredMessage,
    TypingEvent,
)
from tidings.sdk.linking import LinkedDevice, PendingLink
from tidings.sdk.store import ProfileStore
from tidings.sdk.trust import ContactTrust, VerifiedDevices, verify_served_list

__all__ = [
    "ContactTrust",
    "DeviceClient",
    "DeviceListChanged",
    "DeviceRemoved",
    "DeviceSummary",
    "Event",
    "IncomingMessage",
    "LinkedDevice",
    "PendingLink",
    "ProfileStore",
    "ReceiptEvent",
    "SdkError",
    "SecurityNotice",
    "StoredMessage",
    "TrustError",
    "TypingEvent",
    "VerifiedDevices",
    "verify_served_list",
]
