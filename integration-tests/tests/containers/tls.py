"""The container stack's TLS as a client sees it: certificates, trust, the proxy's ports.

The suite makes its own CA and server certificate per session with the repository's
scripts/make_certs.sh (what `make certs` runs), so it tests that script too, and trusts
exactly that CA: every call to the stack is `https://` checked against it, and nothing
else in the process trusts it.
"""

from __future__ import annotations

import base64
import hashlib
import ssl
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ROOT = Path(__file__).resolve().parents[3]
MAKE_CERTS = ROOT / "scripts" / "make_certs.sh"
# The port each service listens on inside the compose network; the proxy (infra/nginx/
# services.conf) terminates TLS for it on the same port number.
PROXIED_PORTS = {"airflow": 8080, "mlflow": 5000, "serving": 5001, "training": 5002}
PROXY = "proxy"


def make_certs(folder: Path) -> None:
    """A new CA and server certificate in `folder`, by scripts/make_certs.sh."""
    result = subprocess.run(
        ["bash", str(MAKE_CERTS), str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"scripts/make_certs.sh failed:\n{result.stdout}\n{result.stderr}")


def client_context(ca_file: Path) -> ssl.SSLContext:
    """Verifies the peer's certificate and name against `ca_file` only."""
    return ssl.create_default_context(cafile=str(ca_file))


def spki_pin(cert_file: Path) -> str:
    """base64(sha256(SubjectPublicKeyInfo)) of a certificate: Chromium's pin format."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()
