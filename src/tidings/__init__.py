"""Tidings: self-hosted, end-to-end encrypted business messaging."""

__version__ = "0.1.0"
