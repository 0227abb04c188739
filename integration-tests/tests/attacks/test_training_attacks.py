"""Attacks on the training service, run against the real thing.

`python -m training_service` from its own venv (.venvs/ml-training-service), as deployed:
uvicorn, ENVIRONMENT=production, named tokens of one scope each (API_TOKENS), a Host
allow-list, and small limits so each attack crosses one. No MLflow is needed: no attack gets
as far as training. Each attack must be refused with the status and the words that say why,
and the service must still answer /health afterwards.
"""

from __future__ import annotations

import io
import os
import select
import socket
import struct
import subprocess
import tarfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

from scripts.embedded.config import ROOT

PYTHON = ROOT / ".venvs" / "ml-training-service" / "bin" / "python"
TOKENS = {"train": "attack-train-token", "admin": "attack-admin-token"}
ALL = "attack-all-scopes-token"
MAX_BODY_BYTES = 64 << 10
MAX_ARCHIVE_BYTES = 256 << 10
MAX_UNCOMPRESSED = 1 << 20
MAX_IMAGES = 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Training:
    url: str
    port: int
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes]

    def client(self, scope: str | None = None) -> httpx.Client:
        token = TOKENS[scope] if scope else ALL
        return httpx.Client(
            base_url=self.url, timeout=60, headers={"Authorization": f"Bearer {token}"}
        )

    def assert_alive(self) -> None:
        assert self.process.poll() is None, f"the service died; log:\n{self.log.read_text()}"
        assert httpx.get(f"{self.url}/health", timeout=10).status_code == 200


@pytest.fixture(scope="module")
def training(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Training]:
    if not PYTHON.exists():
        pytest.fail(f"{PYTHON} is missing: run `make setup` at the repository root")
    home = tmp_path_factory.mktemp("training-attacks")
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT / "ml-training-service" / "src"),
        "ENVIRONMENT": "production",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATA_DIR": str(home / "data"),
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",  # nothing listens: unused
        "JOB_EXECUTOR": "thread",
        "API_TOKEN": ALL,
        "API_TOKENS": f"trainer:train:{TOKENS['train']};janitor:admin:{TOKENS['admin']}",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        "MAX_ARCHIVE_BYTES": str(MAX_ARCHIVE_BYTES),
        "MAX_ARCHIVE_UNCOMPRESSED_BYTES": str(MAX_UNCOMPRESSED),
        "MAX_DATASET_IMAGES": str(MAX_IMAGES),
        "MAX_IMAGE_PIXELS": "1000000",
    }
    log = home / "service.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(PYTHON), "-m", "training_service"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = Training(f"http://127.0.0.1:{port}", port, home / "data", log, process)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                service.assert_alive()
                break
            except (httpx.HTTPError, AssertionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the training service did not start; log:\n{log.read_text()}")
                time.sleep(0.3)
        yield service
    finally:
        process.terminate()
        process.wait(30)
    text = log.read_text()
    for secret in (ALL, *TOKENS.values()):
        assert secret not in text, "a token value reached the service log"


def png(side: int = 8, value: int = 0) -> bytes:
    out = io.BytesIO()
    Image.new("L", (side, side), value).save(out, "PNG")
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width` x `height` pixels (a decompression bomb's
    signature: the decoder would allocate for the claimed size)."""
    data = bytearray(png())
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def write_tree(root: Path, per_class: int, classes: tuple[str, ...] = ("a", "b")) -> None:
    for index, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            (root / name / f"{i}.png").write_bytes(png(value=index * 100 + i))


def zip_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return out.getvalue()


def upload(client: httpx.Client, archive: bytes, name: str = "data.zip") -> httpx.Response:
    return client.post("/v1/datasets", files={"file": (name, archive)}, data={"image_size": "8"})


# --- tokens -------------------------------------------------------------------------------


def test_no_token_or_an_unknown_one_is_401(training: Training) -> None:
    for headers in ({}, {"Authorization": "Bearer guessed"}, {"Authorization": f"Basic {ALL}"}):
        response = httpx.post(f"{training.url}/v1/train", json={}, headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
    training.assert_alive()


@pytest.mark.parametrize(
    "value", ["Bearer ätsch".encode(), "Bearer ätsch".encode("latin-1"), b"Bearer \x80\xff"]
)
def test_a_non_ascii_token_is_401_never_500(training: Training, value: bytes) -> None:
    for path in ("/v1/train", "/v1/datasets", "/v1/jobs/job-x/cancel"):
        headers = httpx.Headers([(b"Authorization", value), (b"Content-Type", b"application/json")])
        response = httpx.post(f"{training.url}{path}", content=b"{}", headers=headers)
        assert response.status_code == 401, (path, response.text)
    training.assert_alive()


def test_a_token_without_the_scope_is_403_naming_it(training: Training) -> None:
    with training.client("admin") as admin, training.client("train") as train:
        refused = admin.post("/v1/train", json={"epochs": 1})
        assert refused.status_code == 403
        assert "lacks scope 'train' (needed for POST /v1/train)" in refused.json()["detail"]
        refused = admin.post("/v1/datasets", json={"source": "digits"})
        assert refused.status_code == 403 and "'train'" in refused.json()["detail"]
        refused = upload(admin, zip_of({"a/0.png": png(), "b/0.png": png(value=9)}))
        assert refused.status_code == 403 and "'train'" in refused.json()["detail"]
        refused = train.post("/v1/jobs/job-x/cancel")
        assert refused.status_code == 403
        assert "lacks scope 'admin' (needed for POST /v1/jobs/job-x/cancel)" in refused.text
        assert admin.post("/v1/jobs/job-x/cancel").status_code == 404  # allowed: no such job
    training.assert_alive()


# --- request size and Host ----------------------------------------------------------------


def test_a_declared_60_mb_body_is_413_without_sending_it(training: Training) -> None:
    with socket.create_connection(("127.0.0.1", training.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/train HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {ALL}\r\nContent-Length: {60 << 20}\r\n\r\n".encode()
        )
        answer = read_answer(sock)  # answered with not one body byte sent
    assert answer.startswith("HTTP/1.1 413"), answer
    assert f"MAX_BODY_BYTES={MAX_BODY_BYTES:,}" in answer
    training.assert_alive()


def stream_until_answered(port: int, path: str, limit: int = 16 << 20) -> tuple[str, int]:
    """POST a chunked JSON body of up to `limit` bytes, 16 KiB a chunk, stopping as soon as
    the service answers; returns the answer and how many body bytes went out before it."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ALL}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"4000\r\n" + b"x" * 16384 + b"\r\n"
        try:
            while sent < limit and not select.select([sock], [], [], 0)[0]:
                sock.sendall(chunk)
                sent += 16384
        except OSError:  # the service closed the connection while we were still sending
            pass
        return read_answer(sock), sent


def read_answer(sock: socket.socket) -> str:
    """One whole HTTP answer (headers and Content-Length bytes of body) from `sock`."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def test_a_streamed_body_past_the_cap_is_413(training: Training) -> None:
    for path in ("/v1/train", "/v1/datasets"):
        answer, sent = stream_until_answered(training.port, path)
        assert answer.startswith("HTTP/1.1 413"), answer
        assert "MAX_BODY_BYTES" in answer
        # The cap is 64 KiB; what is still in flight in socket buffers comes on top.
        assert sent < 4 << 20, f"{sent:,} bytes went out before the 413"
    training.assert_alive()


def test_an_archive_over_max_archive_bytes_is_413(training: Training) -> None:
    noise = os.urandom(MAX_ARCHIVE_BYTES + 1)  # incompressible
    with training.client("train") as client:
        response = upload(client, noise)
    assert response.status_code == 413
    assert "MAX_ARCHIVE_BYTES" in response.json()["detail"]
    training.assert_alive()


def test_an_unknown_host_header_is_400(training: Training) -> None:
    for host in ("evil.example", "training.attacker:5002"):
        response = httpx.get(f"{training.url}/health", headers={"Host": host})
        assert response.status_code == 400
        assert "is not in ALLOWED_HOSTS" in response.json()["detail"]
    assert httpx.get(f"http://localhost:{training.port}/health").status_code == 200
    training.assert_alive()


# --- folder datasets and archives ---------------------------------------------------------


def test_symlinks_out_of_data_dir_are_never_followed(training: Training, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write_tree(outside, 3, ("stolen",))
    (outside / "secret.png").write_bytes(png(value=200))
    tree = training.data_dir / "linked"
    write_tree(tree, 3)
    (tree / "stolen").symlink_to(outside / "stolen", target_is_directory=True)
    (tree / "a" / "secret.png").symlink_to(outside / "secret.png")
    (training.data_dir / "escape").symlink_to(outside, target_is_directory=True)
    with training.client("train") as client:
        made = client.post("/v1/datasets", json={"source": "folder", "path": "linked"})
        assert made.status_code == 201, made.text
        assert made.json()["classes"] == ["a", "b"]  # the linked class folder is skipped
        assert made.json()["class_counts"] == {"a": 3, "b": 3}  # and so is the linked file
        for path in ("escape", "../outside", str(outside)):
            refused = client.post("/v1/datasets", json={"source": "folder", "path": path})
            assert refused.status_code == 422, (path, refused.text)
            assert "leaves DATA_DIR" in refused.json()["detail"]
    training.assert_alive()


def test_decompression_bombs_are_413(training: Training) -> None:
    tree = training.data_dir / "bombs"
    write_tree(tree, 2)
    (tree / "b" / "bomb.png").write_bytes(png_claiming(60_000, 60_000))
    with training.client("train") as client:
        folder = client.post("/v1/datasets", json={"source": "folder", "path": "bombs"})
        assert folder.status_code == 413, folder.text
        assert "b/bomb.png" in folder.json()["detail"]
        assert "MAX_IMAGE_PIXELS" in folder.json()["detail"]
        # Over MAX_IMAGE_PIXELS (1,000,000 here) but under Pillow's own bomb limit.
        images = {"a/0.png": png(), "b/0.png": png(value=9), "b/big.png": png_claiming(2000, 2000)}
        archived = upload(client, zip_of(images))
        assert archived.status_code == 413, archived.text
        assert "MAX_IMAGE_PIXELS" in archived.json()["detail"]
        # An archive whose members inflate far past what was sent.
        bomb = zip_of({"a/0.png": png(), "b/0.png": png(value=9), "b/zeros.png": bytes(8 << 20)})
        assert len(bomb) < MAX_ARCHIVE_BYTES
        inflated = upload(client, bomb)
        assert inflated.status_code == 413, inflated.text
        assert "MAX_ARCHIVE_UNCOMPRESSED_BYTES" in inflated.json()["detail"]
    training.assert_alive()


def test_too_many_images_are_413(training: Training) -> None:
    tree = training.data_dir / "crowd"
    write_tree(tree, MAX_IMAGES // 2 + 1)
    files = {f"{c}/{i}.png": png(value=i) for c in "ab" for i in range(MAX_IMAGES // 2 + 1)}
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    with training.client("train") as client:
        folder = client.post("/v1/datasets", json={"source": "folder", "path": "crowd"})
        assert folder.status_code == 413, folder.text
        assert f"MAX_DATASET_IMAGES={MAX_IMAGES}" in folder.json()["detail"]
        for archive_bytes, name in ((zip_of(files), "x.zip"), (tar.getvalue(), "x.tar.gz")):
            refused = upload(client, archive_bytes, name)
            assert refused.status_code == 413, refused.text
            assert "MAX_DATASET_IMAGES" in refused.json()["detail"]
    # Refused uploads and builds leave no work folder (`.upload-*`) or half snapshot (`.tmp-*`).
    leftovers = [*training.data_dir.glob(".upload-*"), *training.data_dir.glob("datasets/.tmp-*")]
    assert not leftovers, f"a refused dataset left files behind: {leftovers}"
    training.assert_alive()
