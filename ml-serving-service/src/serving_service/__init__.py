"""ml-serving-service: low-latency predictions from an MLflow registry alias, hot-swapped."""

__version__ = "0.1.0"
SERVICE_NAME = "ml-serving-service"
