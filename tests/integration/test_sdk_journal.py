"""A device's event journal (the business platform's API devices read it with a cursor of
their own, kept in the platform's database)."""

from __future__ import annotations

from network_support import register

BOB = "+15550100002"


async def test_the_journal_is_trimmed_once_its_reader_is_far_enough_ahead(
    server, invite, tmp_path
) -> None:
    """Applied journal entries are deleted in batches, not after every page: a reader never
    reads behind its cursor, so it sees the same entries either way."""
    bob = await register(server, invite, tmp_path, BOB, "bob")
    try:
        bob.enable_journal()
        with bob.store.transaction() as state:
            for n in range(300):
                state.journal({"event": "test", "n": n})
        first = bob.journal_after(0, 1000)
        positions = [p for p, _ in first]
        assert [e["n"] for _, e in first] == list(range(300))

        bob.journal_trim(positions[99])  # 100 applied: kept for now
        assert len(bob.journal_after(0, 1000)) == 300
        assert [e["n"] for _, e in bob.journal_after(positions[99], 1000)] == list(range(100, 300))
        bob.journal_trim(positions[279])  # 280 applied: trimmed
        assert [e["n"] for _, e in bob.journal_after(0, 1000)] == list(range(280, 300))
    finally:
        await bob.close()
