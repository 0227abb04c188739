"""POST /v1/datasets with an uploaded archive: good .zip and .tar.gz trees, and every kind of
bad archive or bad file, each answered with its 4xx and leaving nothing behind in DATA_DIR.

A service of its own with small limits, so that "too large" is a few hundred kilobytes.
"""

from __future__ import annotations

import io
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from support import AUTH, ServiceProcess

LIMITS = {
    "MAX_ARCHIVE_BYTES": "300000",
    "MAX_ARCHIVE_UNCOMPRESSED_BYTES": "2000000",
    "MAX_DATASET_IMAGES": "60",
    "MAX_IMAGE_PIXELS": "250000",
}


@pytest.fixture(scope="module")
def limited(mlflow_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    data_dir = tmp_path_factory.mktemp("upload-data")
    env = {"MLFLOW_TRACKING_URI": mlflow_uri, "JOB_EXECUTOR": "thread", **LIMITS}
    process = ServiceProcess(data_dir, env, data_dir.parent / "uploads.log").start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture()
def http(limited: ServiceProcess) -> Iterator[httpx.Client]:
    with limited.client() as client:
        client.headers.update(AUTH)
        yield client


def png(size: tuple[int, int] = (20, 20), mode: str = "RGB", seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(buffer, "PNG")
    return buffer.getvalue()


def blank_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, "PNG")
    return buffer.getvalue()


def tree(classes: dict[str, int], mode: str = "RGB", top: str = "") -> dict[str, bytes]:
    files = {}
    for c, (name, count) in enumerate(classes.items()):
        for i in range(count):
            size = (20, 20) if i % 3 else (24, 30)  # the most common shorter side is 20
            files[f"{top}{name}/{i}.png"] = png(size, mode, seed=c * 100 + i)
    return files


def make_zip(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


def make_tar(files: dict[str, bytes], special: list[tarfile.TarInfo] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for info in special or []:
            archive.addfile(info)
    return buffer.getvalue()


def tar_entry(name: str, kind: bytes, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def huge_png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels but holds almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def upload(
    client: httpx.Client, data: bytes, name: str = "data.zip", **fields: object
) -> httpx.Response:
    return client.post(
        "/v1/datasets",
        files={"file": (name, data, "application/octet-stream")},
        data={key: str(value) for key, value in fields.items()},
    )


def listing(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


def test_a_zip_under_one_top_folder_becomes_a_dataset(http: httpx.Client) -> None:
    files = tree({"cat": 9, "dog": 6}, top="pets/")
    response = upload(http, make_zip(files), test_fraction=0.2, seed=3)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["source"] == "archive" and body["classes"] == ["cat", "dog"]
    assert body["class_counts"] == {"cat": 9, "dog": 6}
    assert (body["image_size"], body["channels"], body["image_shape"]) == (20, 3, [20, 20])
    assert body["n_train"] + body["n_test"] == 15 and len(body["sha256"]) == 64
    assert len(body["mean"]) == len(body["std"]) == 3
    # The same images as a .tar.gz, without the top folder: the same content, the same hash.
    flat = {name.removeprefix("pets/"): data for name, data in files.items()}
    as_tar = upload(http, make_tar(flat), name="pets.tgz", test_fraction=0.2, seed=3)
    assert as_tar.status_code == 201, as_tar.text
    assert as_tar.json()["sha256"] == body["sha256"]
    samples = http.get(f"/v1/datasets/{body['dataset_id']}/samples", params={"limit": 2}).json()
    assert np.asarray(samples["instances"]).shape == (2, 3, 20, 20)


def test_a_gray_tar_gz_defaults_to_one_channel_and_options_apply(http: httpx.Client) -> None:
    data = make_tar(tree({"a": 5, "b": 5, "c": 5}, mode="L"))
    gray = upload(http, data, name="digits.tar.gz")
    assert gray.status_code == 201, gray.text
    assert (gray.json()["channels"], gray.json()["classes"]) == (1, ["a", "b", "c"])
    chosen = upload(http, data, name="digits.tar.gz", image_size=12, channels=3, source="archive")
    assert chosen.status_code == 201, chosen.text
    assert (chosen.json()["image_size"], chosen.json()["channels"]) == (12, 3)


def test_upload_idempotency_keys_on_the_archive_bytes(http: httpx.Client) -> None:
    key = {"Idempotency-Key": "upload-key-1"}
    data = make_zip(tree({"x": 5, "y": 5}))
    first = http.post("/v1/datasets", files={"file": ("a.zip", data)}, headers=key)
    assert first.status_code == 201, first.text
    replay = http.post("/v1/datasets", files={"file": ("renamed.zip", data)}, headers=key)
    assert replay.status_code == 200 and replay.json() == first.json()
    other = make_zip(tree({"x": 5, "y": 6}))
    conflict = http.post("/v1/datasets", files={"file": ("a.zip", other)}, headers=key)
    assert conflict.status_code == 409 and "archive" in conflict.json()["detail"]
    fields = http.post(
        "/v1/datasets", files={"file": ("a.zip", data)}, data={"seed": "9"}, headers=key
    )
    assert fields.status_code == 409


GOOD = tree({"a": 4, "b": 4})
BAD_ARCHIVES = {
    "zip-slip": (make_zip({**GOOD, "a/../../evil.png": png()}), 422, "leaves the archive"),
    "absolute": (make_zip({**GOOD, "/abs/a.png": png()}), 422, "absolute path"),
    "zip symlink": (make_zip(GOOD, links={"a/link.png": "/etc/passwd"}), 422, "symbolic link"),
    "tar symlink": (
        make_tar(GOOD, [tar_entry("a/link.png", tarfile.SYMTYPE, "/etc/passwd")]),
        422,
        "'a/link.png' is a symbolic link",
    ),
    "tar hardlink": (
        make_tar(GOOD, [tar_entry("b/hard.png", tarfile.LNKTYPE, "a/0.png")]),
        422,
        "'b/hard.png' is a hard link",
    ),
    "tar device": (make_tar(GOOD, [tar_entry("a/dev", tarfile.CHRTYPE)]), 422, "device"),
    "tar slip": (make_tar({**GOOD, "../../escape.png": png()}), 422, "leaves the archive"),
    "not an image": (
        make_zip({**GOOD, "a/notes.txt": b"hello"}),
        422,
        "'a/notes.txt' is not an image",
    ),
    "corrupt image": (
        make_zip({**GOOD, "b/broken.png": b"\x89PNG\r\n\x1a\n-garbage"}),
        422,
        "'b/broken.png' is not a readable image",
    ),
    "truncated image": (
        make_zip({**GOOD, "b/cut.png": png((200, 200))[:400]}),
        422,
        "'b/cut.png' is not a readable image",
    ),
    "one class": (make_zip(tree({"only": 6})), 422, "at least 2 class folders"),
    "empty class": (
        make_tar(GOOD, [tar_entry("hollow", tarfile.DIRTYPE)]),
        422,
        "'hollow' holds no images",
    ),
    "misplaced file": (make_zip({**GOOD, "loose.png": png()}), 422, "'loose.png' is misplaced"),
    "nested too deep": (make_zip({**GOOD, "a/deeper/x.png": png()}), 422, "misplaced"),
    "not an archive": (b"just some bytes" * 10, 422, "not a .zip or .tar.gz archive"),
    "too many images": (make_zip(tree({"a": 31, "b": 30})), 413, "MAX_DATASET_IMAGES=60"),
    "too many pixels": (
        make_zip({**GOOD, "a/wide.png": blank_png(600, 500)}),
        413,
        "'a/wide.png' has 300,000 pixels, over MAX_IMAGE_PIXELS=250,000",
    ),
    "pillow decompression bomb": (
        make_zip({**GOOD, "a/bomb.png": huge_png_header(20_000, 20_000)}),
        413,
        "'a/bomb.png' has too many pixels, over MAX_IMAGE_PIXELS",
    ),
    "decompression bomb": (
        make_zip({**GOOD, "a/zeros.png": b"\x00" * 2_100_000}),
        413,
        "MAX_ARCHIVE_UNCOMPRESSED_BYTES=2,000,000",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ARCHIVES))
def test_bad_archives_are_refused_and_leave_nothing(
    http: httpx.Client, limited: ServiceProcess, case: str
) -> None:
    data, status_code, fragment = BAD_ARCHIVES[case]
    before = listing(limited.data_dir)
    response = upload(http, data, name="bad.tar.gz" if data[:2] == b"\x1f\x8b" else "bad.zip")
    assert response.status_code == status_code, response.text
    assert fragment in response.json()["detail"]
    assert listing(limited.data_dir) == before


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"image_size": 4}, "form.image_size"),
        ({"channels": 2}, "form.channels"),
        ({"test_fraction": 1}, "form.test_fraction"),
        ({"path": "x"}, "form.path: Extra inputs are not permitted"),
        ({"source": "digits"}, "source 'archive'"),
    ],
)
def test_bad_form_fields_are_422(
    http: httpx.Client, limited: ServiceProcess, fields: dict, fragment: str
) -> None:
    before = listing(limited.data_dir)
    response = upload(http, make_zip(GOOD), **fields)
    assert response.status_code == 422 and fragment in response.json()["detail"]
    assert listing(limited.data_dir) == before


def test_too_large_archives_are_413_before_being_read(
    http: httpx.Client, limited: ServiceProcess
) -> None:
    before = listing(limited.data_dir)
    big = np.random.default_rng(0).integers(0, 256, 400_000, dtype=np.uint8).tobytes()
    declared = upload(http, big)  # Content-Length says it: refused unread
    assert declared.status_code == 413
    assert "MAX_ARCHIVE_BYTES=300,000" in declared.json()["detail"]
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.zip"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        yield head
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]
        yield f"\r\n--{boundary}--\r\n".encode()

    streamed = http.post(
        "/v1/datasets",
        content=chunks(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert streamed.status_code == 413 and "MAX_ARCHIVE_BYTES" in streamed.json()["detail"]
    assert listing(limited.data_dir) == before


def test_malformed_multipart_bodies_are_422(http: httpx.Client, limited: ServiceProcess) -> None:
    before = listing(limited.data_dir)
    no_file = http.post("/v1/datasets", data={"seed": "1"}, files={"other": ("x", b"1")})
    assert no_file.status_code == 422, no_file.text
    no_boundary = http.post(
        "/v1/datasets", content=b"x", headers={"Content-Type": "multipart/form-data"}
    )
    assert no_boundary.status_code == 422 and "boundary" in no_boundary.json()["detail"]
    cut = http.post(
        "/v1/datasets",
        content=b'--zz\r\nContent-Disposition: form-data; name="file"; filename="a.zip"\r\n\r\nPK',
        headers={"Content-Type": "multipart/form-data; boundary=zz"},
    )
    assert cut.status_code == 422 and "ended before" in cut.json()["detail"]
    assert listing(limited.data_dir) == before


def test_shapes_count_over_the_image_limit_names_the_setting(http: httpx.Client) -> None:
    response = http.post("/v1/datasets", json={"source": "shapes", "count": 61})
    assert response.status_code == 413
    assert "MAX_DATASET_IMAGES=60" in response.json()["detail"]


def test_uploading_needs_the_token(limited: ServiceProcess) -> None:
    with limited.client() as anonymous:
        response = upload(anonymous, make_zip(GOOD))
    assert response.status_code == 401
