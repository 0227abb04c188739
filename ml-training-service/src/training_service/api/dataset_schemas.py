"""Wire schemas of /v1/datasets: the JSON and multipart requests, the dataset, its samples."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from training_service.api.schemas import Seed, StrictBody

ImageSize = Annotated[
    int,
    Field(
        ge=8,
        le=512,
        description="Square side images are resized to (8..512). Default: 8 for digits, "
        "32 for shapes, the images' most common shorter side (clamped to 8..224) otherwise.",
    ),
]
Channels = Annotated[
    Literal[1, 3],
    Field(description="1 (grayscale) or 3 (RGB). Default: 1 if every image is gray, else 3."),
]
TestFraction = Annotated[float, Field(gt=0.0, lt=1.0, description="Held-out share.")]


class ArchiveOptions(StrictBody):
    """The form fields sent beside an uploaded archive (multipart/form-data)."""

    image_size: ImageSize | None = None
    channels: Channels | None = None
    test_fraction: TestFraction = 0.2
    seed: Seed = 42
    noise: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Augmentation: std of Gaussian noise for a noisy copy of the train split "
        "(0 = none).",
    )


class DatasetCreate(ArchiveOptions):
    source: Literal["digits", "folder", "shapes"] = Field(
        description="'digits': scikit-learn's bundled 8x8 digits; 'folder': an ImageFolder "
        "tree (<class_name>/<image>) under DATA_DIR; 'shapes': generated RGB images of five "
        "shape classes. An archive is uploaded as multipart/form-data instead (part 'file')."
    )
    path: str | None = Field(
        default=None,
        max_length=1024,
        description="Folder relative to DATA_DIR (source 'folder' only).",
    )
    count: int | None = Field(
        default=None,
        ge=10,
        le=1_000_000,
        description="Images to generate (source 'shapes' only; default 2000; at most "
        "MAX_DATASET_IMAGES).",
    )


class DatasetPublic(BaseModel):
    dataset_id: str
    source: Literal["digits", "folder", "shapes", "archive"]
    path: str | None
    n_train: int
    n_test: int
    classes: list[str]
    image_shape: list[int] = Field(description="[height, width] of every image.")
    sha256: str = Field(
        description="SHA-256 of the snapshot's content (class names, then each split's "
        "images and labels: shape and bytes)."
    )
    created_at: str
    test_fraction: float
    seed: int
    noise: float
    image_size: int = Field(description="Square side of every image (height == width).")
    channels: int = Field(description="1 (grayscale) or 3 (RGB).")
    class_counts: dict[str, int] = Field(
        description="Images per class in the whole dataset (without noisy copies)."
    )
    mean: list[float] = Field(description="Per-channel mean of the train split, 0..1.")
    std: list[float] = Field(description="Per-channel standard deviation of the train split.")


class DatasetSamples(BaseModel):
    dataset_id: str
    split: Literal["train", "test"]
    instances: list[list[list[list[float]]]] = Field(
        description="Images as [channel][row][column] lists (C x H x W), 0..1."
    )
    labels: list[str]
