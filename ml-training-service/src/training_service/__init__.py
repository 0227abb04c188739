"""Training service: an HTTP API that trains a PyTorch image classifier, registered in MLflow."""

from importlib.metadata import PackageNotFoundError, version

SERVICE_NAME = "ml-training-service"

try:
    __version__ = version(SERVICE_NAME)
except PackageNotFoundError:  # running from a source tree (PYTHONPATH=src), not an install
    __version__ = "0.1.0"
