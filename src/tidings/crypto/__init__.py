"""Pure end-to-end crypto for Tidings: no I/O, state in and out as values.

Builds on vodozemac (Olm) for the ratchets and on `cryptography` for everything around them:
account signatures on device lists, sealing at rest, and linking proofs.
"""

from tidings.crypto.account_key import AccountKey, verify_ed25519
from tidings.crypto.device import DeviceCrypto, verify_one_time_key
from tidings.crypto.device_list import (
    DeviceEntry,
    DeviceList,
    check_pinned,
    check_served_devices,
    decode_device_list,
    sign_device_list,
    verify_device_list,
)
from tidings.crypto.encoding import b64, unb64
from tidings.crypto.errors import (
    AccountKeyChanged,
    BadSignature,
    CryptoError,
    DecryptionFailed,
    DeviceListMismatch,
    DeviceListRollback,
    DuplicateMessage,
    SealError,
)
from tidings.crypto.linking import (
    approve_proof,
    decode_link_code,
    encode_link_code,
    join_proof,
    link_qr_text,
    new_link_secret,
    parse_link_qr_text,
    verify_approve_proof,
    verify_join_proof,
)
from tidings.crypto.sealing import Sealer, new_master_key
from tidings.crypto.sessions import (
    MAX_UNPICKLED_STEPS,
    LiveSession,
    OpenSessions,
    PeerSessions,
    SeenMessages,
    SessionManager,
    SessionRecord,
    replay_steps,
)

__all__ = [
    "MAX_UNPICKLED_STEPS",
    "AccountKey",
    "AccountKeyChanged",
    "BadSignature",
    "CryptoError",
    "DecryptionFailed",
    "DeviceCrypto",
    "DeviceEntry",
    "DeviceList",
    "DeviceListMismatch",
    "DeviceListRollback",
    "DuplicateMessage",
    "LiveSession",
    "OpenSessions",
    "PeerSessions",
    "SealError",
    "Sealer",
    "SeenMessages",
    "SessionManager",
    "SessionRecord",
    "approve_proof",
    "b64",
    "check_pinned",
    "check_served_devices",
    "decode_device_list",
    "decode_link_code",
    "encode_link_code",
    "join_proof",
    "link_qr_text",
    "new_link_secret",
    "new_master_key",
    "parse_link_qr_text",
    "replay_steps",
    "sign_device_list",
    "unb64",
    "verify_approve_proof",
    "verify_device_list",
    "verify_ed25519",
    "verify_join_proof",
    "verify_one_time_key",
]
