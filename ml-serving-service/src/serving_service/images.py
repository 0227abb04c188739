"""Image files into model inputs, with the preprocessing the model version was trained with.

The pipeline is the one ml-training-service applies when it builds a dataset (each service
has its own copy; the contract is the MLmodel `metadata.preprocessing` of issue #16):
`Image.open` -> `ImageOps.exif_transpose` -> `convert("L" | "RGB")` -> `resize((size, size),
BILINEAR)` (squashed, no crop) -> uint8 -> float32 / scale -> (C, H, W). Normalisation by
mean and std is the network's first layer (`normalize_in_model`), so it is not applied here
unless a model says otherwise. A version logged without `preprocessing` takes images of its
signature's shape: (1, 8, 8) is the grayscale digits model.

Only PNG and JPEG are opened (by their signature bytes, whatever the declared type); the
pixel count is checked from the header before any pixel is decoded.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps

# Our own limit (MAX_IMAGE_PIXELS) is checked from the header first; Pillow's warning for
# images above its default limit would only repeat it in the log.
warnings.simplefilter("ignore", Image.DecompressionBombWarning)

_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}


class ImageRejected(Exception):
    """An image request that cannot be answered: `status` is the HTTP status, `detail` the fix."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Preprocessing:
    """How a model version turns an image file into its float input (MLmodel metadata)."""

    image_size: int
    channels: int
    scale: float = 255.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    normalize_in_model: bool = True

    @property
    def color_mode(self) -> str:
        return "L" if self.channels == 1 else "RGB"

    @property
    def instance_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    def describe(self) -> dict[str, Any]:
        """What `GET /v1/model` reports."""
        return {
            "image_size": self.image_size,
            "channels": self.channels,
            "color_mode": self.color_mode,
            "resize": "bilinear",
            "scale": self.scale,
            "normalize_in_model": self.normalize_in_model,
        }

    @classmethod
    def from_metadata(cls, raw: Any, instance_shape: tuple[int, ...]) -> Preprocessing | None:
        """From MLmodel `metadata.preprocessing`, or from the signature when it is absent.

        None: the model takes no images (its input is not (1 or 3, N, N)). A `preprocessing`
        that contradicts the signature raises ValueError (the version is refused).
        """
        if raw is None:
            if len(instance_shape) == 3 and instance_shape[0] in (1, 3):
                c, h, w = instance_shape
                if h == w:
                    return cls(image_size=h, channels=c)
            return None
        if not isinstance(raw, dict):
            raise ValueError("metadata.preprocessing must be a mapping")
        try:
            prep = cls(
                image_size=int(raw["image_size"]),
                channels=int(raw["channels"]),
                scale=float(raw.get("scale", 255.0)),
                mean=_floats(raw.get("mean")),
                std=_floats(raw.get("std")),
                normalize_in_model=bool(raw.get("normalize_in_model", True)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"metadata.preprocessing is invalid ({exc!r})") from exc
        if prep.channels not in (1, 3) or prep.image_size < 1 or not prep.scale > 0:
            raise ValueError("metadata.preprocessing needs channels 1 or 3, image_size >= 1")
        if str(raw.get("resize", "bilinear")).lower() != "bilinear":
            raise ValueError(f"resize '{raw.get('resize')}' is not served; only bilinear")
        if prep.instance_shape != tuple(instance_shape):
            raise ValueError(
                f"metadata.preprocessing gives inputs {list(prep.instance_shape)} but the "
                f"signature declares {list(instance_shape)}"
            )
        if not prep.normalize_in_model and (
            prep.mean is None or prep.std is None or any(s <= 0 for s in prep.std)
        ):
            raise ValueError("normalize_in_model is false but mean/std are missing or not > 0")
        return prep


def _floats(value: Any) -> tuple[float, ...] | None:
    return None if value is None else tuple(float(v) for v in value)


@dataclass
class OpenedImage:
    """An image whose header was read and checked; no pixel decoded yet."""

    name: str
    image: Image.Image

    @property
    def pixels(self) -> int:
        return math.prod(self.image.size)


def open_image(name: str, data: bytes, max_pixels: int, declared: str | None = None) -> OpenedImage:
    """Read the header: 415 if not PNG/JPEG, 422 if unreadable, 413 above `max_pixels`."""
    kind = next((k for sig, k in _SIGNATURES.items() if data.startswith(sig)), None)
    if kind is None:
        said = f" (sent as {declared})" if declared else ""
        raise ImageRejected(
            415, f"file '{name}' is not a PNG or JPEG image{said}; send PNG or JPEG files"
        )
    try:
        image = Image.open(io.BytesIO(data), formats=[kind])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_many_pixels(name, None, max_pixels) from exc
    except Exception as exc:  # Pillow's parsers raise many types on broken files
        raise ImageRejected(422, f"file '{name}' is a corrupt {kind} image: {exc}") from exc
    if math.prod(image.size) > max_pixels:
        raise _too_many_pixels(name, image.size, max_pixels)
    return OpenedImage(name, image)


def _too_many_pixels(name: str, size: tuple[int, int] | None, max_pixels: int) -> ImageRejected:
    has = f" has {size[0]}x{size[1]} pixels," if size else ""
    return ImageRejected(
        413, f"file '{name}'{has} more than MAX_IMAGE_PIXELS={max_pixels}; send a smaller image"
    )


def to_instance(opened: OpenedImage, prep: Preprocessing) -> np.ndarray:
    """Decode and preprocess one image into float32 (C, H, W); 422 if its data is broken."""
    try:
        image = opened.image
        ImageOps.exif_transpose(image, in_place=True)  # in place: no copy without EXIF
        if image.mode != prep.color_mode:
            image = image.convert(prep.color_mode)
        side = prep.image_size
        if image.size != (side, side):
            image = image.resize((side, side), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.uint8)
    except Exception as exc:  # truncated or corrupt data shows only when decoding
        raise ImageRejected(
            422, f"file '{opened.name}' is a corrupt {opened.image.format} image: {exc}"
        ) from exc
    x = pixels.astype(np.float32) / np.float32(prep.scale)
    x = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)
    if not prep.normalize_in_model and prep.mean is not None and prep.std is not None:
        mean = np.asarray(prep.mean, dtype=np.float32)[:, None, None]
        std = np.asarray(prep.std, dtype=np.float32)[:, None, None]
        x = (x - mean) / std
    return np.ascontiguousarray(x)


def to_batch(opened: list[OpenedImage], prep: Preprocessing) -> np.ndarray:
    """Every image decoded into one float32 (N, C, H, W) batch, in order."""
    return np.stack([to_instance(o, prep) for o in opened])
