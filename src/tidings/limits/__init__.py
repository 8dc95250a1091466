"""Messaging limits and rate counters of business numbers: tiers, throughput, pair rate."""
