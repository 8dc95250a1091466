"""Blob storage: opaque bytes by key (attachment ciphertext, sealed business media).

`BlobStore` is the interface; `FileBlobStore` keeps blobs under the data folder. An
S3-compatible store can implement the same four methods for scale-out.
"""

from tidings.storage.base import BlobNotFound, BlobStore, InvalidBlobKey, check_key
from tidings.storage.filesystem import FileBlobStore

__all__ = ["BlobNotFound", "BlobStore", "FileBlobStore", "InvalidBlobKey", "check_key"]
