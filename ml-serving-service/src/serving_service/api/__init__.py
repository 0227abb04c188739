"""HTTP API: routers per resource, shared dependencies and wire schemas."""
