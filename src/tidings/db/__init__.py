"""Database infrastructure: engine, declarative base, unit of work, migrations."""
