"""ASGI entry point for uvicorn: `uvicorn serving_service.main:app`."""

from serving_service.app import create_app

app = create_app()
