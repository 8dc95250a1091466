"""Devices, their public keys, signed device lists and companion linking."""
