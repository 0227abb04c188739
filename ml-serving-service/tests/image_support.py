"""Image test helpers: a small RGB model with the contract's metadata, files to upload, and
the contract's preprocessing written out independently of the service's code.

`ColourNet` is a plain-torch network whose answer is known without training: normalisation
as its first layer (contract §2), a 3x3 convolution that passes each channel through, global
average pooling and a linear layer; its most probable class is the image's dominant colour
("red", "green", "blue").
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image
from torch import nn

COLOURS = ["red", "green", "blue"]
MEAN = [0.5, 0.4, 0.3]
STD = [0.25, 0.25, 0.25]


class ColourNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.head = nn.Linear(3, 3)
        with torch.no_grad():
            self.conv.weight.zero_()
            for c in range(3):
                self.conv.weight[c, c, 1, 1] = 1.0
            self.conv.bias.fill_(4.0)  # keeps normalised values positive through the ReLU
            self.head.weight.copy_(torch.eye(3) * 3.0)
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        x = torch.relu(self.conv(x))
        return self.head(x.mean(dim=(2, 3)))


def preprocessing(size: int, channels: int) -> dict[str, object]:
    """MLmodel `metadata.preprocessing` as ml-training-service writes it (contract §3)."""
    return {
        "image_size": size,
        "channels": channels,
        "color_mode": "L" if channels == 1 else "RGB",
        "resize": "bilinear",
        "scale": 255.0,
        "mean": MEAN[:channels],
        "std": STD[:channels],
        "normalize_in_model": True,
    }


def encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


def noisy_image(width: int, height: int, colour: int | None, seed: int, mode: str = "RGB"):  # type: ignore[no-untyped-def]
    """An image with noise, dominated by channel `colour` (0 red, 1 green, 2 blue) if given."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 90, size=(height, width, 3)).astype(np.uint8)
    if colour is not None:
        pixels[..., colour] = rng.integers(170, 256, size=(height, width)).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    return image if mode == "RGB" else image.convert(mode)


def contract_pixels(data: bytes, size: int, channels: int) -> np.ndarray:
    """Contract §2, written here on its own: the float32 (C, H, W) input for a file."""
    from PIL import ImageOps

    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    image = image.convert("L" if channels == 1 else "RGB")
    image = image.resize((size, size), Image.Resampling.BILINEAR)
    x = np.asarray(image, dtype=np.uint8).astype(np.float32) / 255.0
    return x[None] if x.ndim == 2 else x.transpose(2, 0, 1)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims `width` x `height` pixels, with no real pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )
