"""Path rules shared by the Graph routes: any `vNN.N` version prefix (or none), numeric ids."""

from __future__ import annotations

import re

from tidings.errors import NotFound

VERSION = re.compile(r"v\d+\.\d+")
NODE_ID = re.compile(r"\d{1,32}")


def check_path(version: str | None, node_id: str) -> None:
    if version is not None and not VERSION.fullmatch(version):
        raise NotFound(f"Unknown path components: /{version}/{node_id}")
    if not NODE_ID.fullmatch(node_id):
        raise NotFound(f"Unknown path components: /{node_id}")
