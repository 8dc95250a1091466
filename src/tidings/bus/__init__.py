"""The bus carries wake-ups and live events between parts and nodes.

It is a doorbell, never the data: anything it says can be recovered from the database, so a
subscriber that misses a message (Redis drops during a reconnect) loses nothing but latency.
"""
