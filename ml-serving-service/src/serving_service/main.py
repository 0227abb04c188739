"""ASGI entry point for uvicorn: `uvicorn serving_service.main:app`."""

from serving_service.app import create_app, serving_stack

app = serving_stack(create_app())
