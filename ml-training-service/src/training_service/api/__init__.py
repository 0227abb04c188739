"""HTTP layer: FastAPI routes, dependencies and wire schemas."""
