"""One mailbox per device: opaque envelopes in commit order, deleted only when acknowledged."""
