"""What customers do and what it allows: service windows, consent, blocks, quality signals.

The business platform's policy at the send (issue 5) reads these facts through the fact
sources in `sources.py`; inbound messages and receipts feed them through `service.py`.
"""
