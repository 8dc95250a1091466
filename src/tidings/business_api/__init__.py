"""The Cloud-API-compatible adapter: wire models, Graph error envelope (routes come later).

`wire` and `graph_errors` are pure: they import only pydantic, `tidings.errors`,
`tidings.kit` and `tidings.protocol`.
"""
