"""scripts/make_certs.sh (`make certs`): the local CA and the TLS proxy's certificate.

No Docker needed: the files, their modes, their names, a real TLS handshake with them, and
that a re-run keeps a valid set. The container suite then runs the stack on such a set.
"""

from __future__ import annotations

import os
import socket
import ssl
import stat
import subprocess
import threading
from pathlib import Path

import compose_file
import pytest
import tls
from container_stack import COMPOSE_FILE, fresh_variables
from cryptography import x509

FILES = {"ca.crt": 0o644, "ca.key": 0o600, "server.crt": 0o644, "server.key": 0o600}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("certs")
    tls.make_certs(folder)
    return folder


def handshake(certs: Path, server_name: str) -> str:
    """Serve one TLS connection with the proxy's certificate; connect as a client would."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(certs / "server.crt", certs / "server.key")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def accept() -> None:
            conn, _ = listener.accept()
            try:
                with server.wrap_socket(conn, server_side=True) as tls_conn:
                    tls_conn.sendall(b"ok")
            except (ssl.SSLError, OSError):
                pass  # the client refused the certificate: its error is the answer

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        client = tls.client_context(certs / "ca.crt")
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client.wrap_socket(raw, server_hostname=server_name) as conn,
        ):
            answer = conn.recv(2).decode()
        thread.join(timeout=10)
        return answer


def test_the_keys_are_private_and_the_certificates_public(certs: Path) -> None:
    modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in certs.iterdir()}
    assert modes == FILES
    if os.geteuid() == 0:  # root gives the key to the proxy image's user
        assert (certs / "server.key").stat().st_uid == 10001


def test_the_certificate_names_every_host_the_clients_use(certs: Path) -> None:
    cert = x509.load_pem_x509_certificate((certs / "server.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = set(sans.get_values_for_type(x509.DNSName))
    addresses = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert {"localhost", tls.PROXY, *tls.PROXIED_PORTS} <= names
    assert "127.0.0.1" in addresses
    # Every https:// host a container is given in docker-compose.yml is a name of it.
    services = compose_file.load(COMPOSE_FILE, fresh_variables({}), profiles=("monitoring",))
    hosts = {
        value.split("://", 1)[1].split(":", 1)[0].split("/", 1)[0]
        for service in services
        for value in service.environment.values()
        if value.startswith("https://")
    }
    assert hosts and hosts - {"localhost"} <= names, hosts


@pytest.mark.parametrize("name", ["proxy", "localhost", "127.0.0.1"])
def test_a_client_trusting_the_ca_accepts_the_proxy(certs: Path, name: str) -> None:
    assert handshake(certs, name) == "ok"


def test_a_name_outside_the_certificate_is_refused(certs: Path) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        handshake(certs, "example.com")


def test_a_rerun_keeps_the_set_and_force_makes_a_new_ca(certs: Path) -> None:
    before = {name: (certs / name).read_bytes() for name in FILES}
    tls.make_certs(certs)
    assert {name: (certs / name).read_bytes() for name in FILES} == before
    forced = subprocess.run(
        ["bash", str(tls.MAKE_CERTS), "--force", str(certs)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "a new CA" in forced.stdout
    assert (certs / "ca.crt").read_bytes() != before["ca.crt"]
    assert handshake(certs, "proxy") == "ok"
    assert not [p for p in certs.iterdir() if p.name.startswith(".new.")], "scratch left behind"
