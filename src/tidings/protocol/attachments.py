"""Attachments on the network core: the limits both sides enforce and the upload response.

Files travel beside messages, not inside them: the sender encrypts a file with a fresh key,
uploads the ciphertext (`POST /v1/attachments`) and puts the attachment id, the key and the
digests inside the end-to-end encrypted message (see `tidings.crypto.attachments`). The core
stores ciphertext it cannot read and hands it to any active device that knows the id.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

MAX_PLAINTEXT_BYTES = 100 * 1024 * 1024  # WhatsApp's largest kind (documents)
# The ciphertext adds a 12-byte nonce and a 16-byte tag; a little slack for future formats.
MAX_CIPHERTEXT_BYTES = MAX_PLAINTEXT_BYTES + 4096
TTL_DAYS = 30
# 128 random bits as lowercase hex: unguessable, so knowing an id is the capability to fetch.
ATTACHMENT_ID = re.compile(r"[0-9a-f]{32}")


class AttachmentUploaded(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    size: int
