"""Message templates: management API, automated and human review, versions."""
