"""Wire schemas. They document the API in OpenAPI; the hot paths parse bodies with orjson."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class PredictRequest(BaseModel):
    instances: list[Any] = Field(
        description="Images: each 8x8, flat 64 or (1, 8, 8) floats in 0..1 for the default "
        "model, or the per-instance shape the loaded model's signature declares",
        examples=[[[[0.0] * 8] * 8]],
    )
    version: str | None = Field(
        default=None,
        description="Score with this registered version instead of the alias (loaded on demand)",
    )


class ModelRef(BaseModel):
    name: str
    alias: str | None
    version: str


class PredictResponse(BaseModel):
    predictions: list[str]
    probabilities: list[list[float]]
    model: ModelRef


class InvocationsRequest(BaseModel):
    """MLflow scoring protocol: exactly one of these keys."""

    inputs: Any = None
    instances: Any = None
    dataframe_split: dict[str, Any] | None = None
    dataframe_records: list[dict[str, Any]] | None = None


class InvocationsResponse(BaseModel):
    predictions: list[Any]


class ModelInfo(BaseModel):
    name: str
    alias: str
    version: str | None
    run_id: str | None
    loaded_at: datetime | None
    metrics: dict[str, float]
    classes: list[str] | None
    input_shape: list[int] | None
    registry: Literal["reachable", "unreachable", "unknown"]
    last_error: str | None
    refused_versions: dict[str, str]


class ReloadResponse(BaseModel):
    name: str
    alias: str
    version: str | None
    swapped: bool


class Status(BaseModel):
    status: str


class VersionResponse(BaseModel):
    service: str
    version: str


class ErrorResponse(BaseModel):
    detail: str


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a body the handler parses itself (faster than pydantic for big arrays)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }
