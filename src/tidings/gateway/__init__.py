"""The websocket gateway: pushes mailbox envelopes to connected devices as they arrive."""
