"""Helpers with no domain knowledge: clocks, ids, tokens, JSON."""
