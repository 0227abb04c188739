"""Image files: check a header before decoding, then decode exactly as serving does.

The preprocessing shared with ml-serving-service: `PIL.Image.open` -> `ImageOps.exif_transpose`
-> `.convert("L" | "RGB")` -> `.resize((size, size), BILINEAR)` (squash, no crop) -> uint8,
here stored as (C, H, W). Pillow is imported on use: the API process starts without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training_service.data.info import DatasetError, DatasetTooLargeError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


@dataclass(frozen=True)
class ImageHeader:
    width: int
    height: int
    gray: bool


def _too_many_pixels(name: str, pixels: int | None, limit: int) -> DatasetTooLargeError:
    size = f"{pixels:,} pixels" if pixels else "too many pixels"
    return DatasetTooLargeError(
        f"image '{name}' has {size}, over MAX_IMAGE_PIXELS={limit:,}: "
        "shrink the image or raise MAX_IMAGE_PIXELS"
    )


def _unreadable(name: str) -> DatasetError:
    # The decoder's own message may hold server paths: the file's name says enough.
    return DatasetError(f"'{name}' is not a readable image (corrupt or not an image): remove it")


def read_header(path: Path, name: str, max_pixels: int) -> ImageHeader:
    """Size and colour of an image from its header (nothing is decoded); `name` is for errors."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise _too_many_pixels(name, width * height, max_pixels)
            gray = image.mode in GRAY_MODES or (image.mode == "P" and _gray_palette(image))
            if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # EXIF rotation by 90 degrees
                width, height = height, width
    except DatasetError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels(name, None, max_pixels) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise _unreadable(name) from None
    return ImageHeader(width, height, gray)


def _gray_palette(image: object) -> bool:
    palette = image.getpalette()  # type: ignore[attr-defined]
    if not palette:
        return False
    return all(palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette), 3))


def decode(path: Path, name: str, image_size: int, channels: int, max_pixels: int) -> np.ndarray:
    """One image file as uint8 (C, image_size, image_size), the shared preprocessing."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.size[0] * image.size[1] > max_pixels:
                raise _too_many_pixels(name, image.size[0] * image.size[1], max_pixels)
            upright = ImageOps.exif_transpose(image)
            converted = upright.convert("L" if channels == 1 else "RGB")
            resized = converted.resize((image_size, image_size), Image.Resampling.BILINEAR)
            pixels = np.asarray(resized, dtype=np.uint8)
    except DatasetError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels(name, None, max_pixels) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise _unreadable(name) from None
    return pixels[None, :, :] if channels == 1 else pixels.transpose(2, 0, 1)
