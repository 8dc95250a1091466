"""The `tidings` command. Thin: it parses, calls a service or the SDK, and prints."""
