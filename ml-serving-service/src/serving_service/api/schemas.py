"""Wire schemas. They document the API in OpenAPI; the hot paths parse bodies with orjson."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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
    prediction_ids: list[str] = Field(
        description="One per instance: post it with the true label to /v1/feedback"
    )
    model: ModelRef


class ImageData(BaseModel):
    name: str | None = Field(
        default=None, description="Echoed in the answer and in errors; default 'images[i]'"
    )
    data: str = Field(
        description="The PNG or JPEG file, base64 (a 'data:image/png;base64,...' URL works too)"
    )


class ImagesRequest(BaseModel):
    """`application/json` form of POST /v1/predict/images."""

    images: list[ImageData] = Field(
        description="Answered in this order; at most MAX_IMAGES_PER_REQUEST"
    )
    top_k: int | None = Field(default=None, ge=1, le=100, description="Classes per image (5)")
    version: str | None = Field(default=None, description="A registered version, not the alias")


class ImagesUpload(BaseModel):
    """`multipart/form-data` form of POST /v1/predict/images."""

    files: list[bytes] = Field(
        description="One part per PNG or JPEG file, any size; its filename names it in the answer"
    )
    top_k: int | None = Field(default=None, ge=1, le=100, description="Same as the query parameter")
    version: str | None = Field(default=None, description="Same as the query parameter")


class ClassProbability(BaseModel):
    label: str
    probability: float


class ImagePrediction(BaseModel):
    name: str = Field(description="The file name (multipart) or the image's 'name' (JSON)")
    label: str = Field(description="The most probable class")
    probability: float
    top_k: list[ClassProbability] = Field(description="The k most probable classes, best first")
    prediction_id: str = Field(description="Post it with the true label to /v1/feedback")


class ImagesResponse(BaseModel):
    predictions: list[ImagePrediction] = Field(description="One per image, in the order sent")
    model: ModelRef


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(coerce_numbers_to_str=True)  # label 3 means class "3"

    prediction_id: str = Field(min_length=1, description="An id from a /v1/predict answer")
    label: str = Field(min_length=1, description="The true class label of that instance")


class FeedbackResponse(BaseModel):
    prediction_id: str
    model_version: str
    predicted: str
    label: str
    correct: bool


class LiveAccuracy(BaseModel):
    feedback: int = Field(description="Outcomes in the window (the most recent ones)")
    correct: int
    accuracy: float | None


class InputDrift(BaseModel):
    version: str
    instances: int = Field(description="Recent inputs the score is computed over")
    score: float | None = Field(
        description="Mean over pixels of |live mean - training mean| / (training std + 0.1); "
        "null without training statistics (MLmodel metadata input_stats) or inputs"
    )
    reference: bool = Field(description="Whether the version carries training statistics")


class LiveMonitoring(BaseModel):
    window: int = Field(description="Outcomes per version and inputs kept for these numbers")
    state: Literal["process", "shared", "unavailable"] = Field(
        description="Where ids, feedback and accuracy live: this process (STATE_URL empty), "
        "shared by every replica (STATE_URL), or shared but not answering (accuracy empty)"
    )
    accuracy: dict[str, LiveAccuracy] = Field(description="Live accuracy by model version")
    drift: InputDrift | None = Field(
        description="Inputs sent to the alias's current version on this replica"
    )


class InvocationsRequest(BaseModel):
    """MLflow scoring protocol: exactly one of these keys."""

    inputs: Any = None
    instances: Any = None
    dataframe_split: dict[str, Any] | None = None
    dataframe_records: list[dict[str, Any]] | None = None


class InvocationsResponse(BaseModel):
    predictions: list[Any]


class RefusedVersion(BaseModel):
    version: str
    result: Literal["load_failed", "smoke_test_failed", "unsafe"] = Field(
        description="unsafe: loading its files would unpickle or run code"
    )
    reason: str


class ModelInfo(BaseModel):
    name: str
    alias: str
    version: str | None
    run_id: str | None
    loaded_at: datetime | None
    metrics: dict[str, float]
    classes: list[str] | None
    input_shape: list[int] | None
    preprocessing: dict[str, Any] | None = Field(
        description="How image files become inputs (POST /v1/predict/images); null: no images"
    )
    registry: Literal["reachable", "unreachable", "unknown"]
    last_error: str | None
    refused_versions: dict[str, str]
    refused: RefusedVersion | None = Field(
        description="The version the alias points to, when the service refused it (the "
        "previous version keeps serving); null when the alias's version serves"
    )
    live: LiveMonitoring


class ReloadResponse(BaseModel):
    name: str
    alias: str
    version: str | None
    swapped: bool


class Status(BaseModel):
    status: str = Field(description="ok (/health); ready or degraded (/ready)")
    detail: str | None = Field(
        default=None, description="What is degraded (absent when all is well)"
    )


class VersionResponse(BaseModel):
    service: str
    version: str


class ErrorResponse(BaseModel):
    detail: str


def request_body(
    model: type[BaseModel], multipart: type[BaseModel] | None = None
) -> dict[str, Any]:
    """OpenAPI for a body the handler parses itself (faster than pydantic for big arrays),
    JSON and, with `multipart`, `multipart/form-data` (`bytes` fields are binary file parts)."""
    content = {"application/json": {"schema": model.model_json_schema()}}
    if multipart is not None:
        content["multipart/form-data"] = {"schema": multipart.model_json_schema()}
    return {"requestBody": {"required": True, "content": content}}
