"""SIGTERM (what `docker stop` and Kubernetes send): requests in flight get their answers,
and the process exits within SHUTDOWN_GRACE_SECONDS even when a client never finishes."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

from support import TOKEN, ServiceProcess

GRACE_SECONDS = 6


def open_request(port: int, body: bytes, sent: int) -> socket.socket:
    """A POST /v1/datasets whose headers and first `sent` body bytes are on their way."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = (
        "POST /v1/datasets HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body[:sent])
    return sock


def read_status(sock: socket.socket) -> int:
    answer = b""
    while b"\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    return int(answer.split(b" ", 2)[1])


def test_sigterm_answers_requests_in_flight_and_exits_within_the_grace(
    mlflow_uri: str, tmp_path: Path
) -> None:
    env = {
        "MLFLOW_TRACKING_URI": mlflow_uri,
        "JOB_EXECUTOR": "thread",  # no worker processes: the test is about uvicorn's shutdown
        "SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
    }
    service = ServiceProcess(tmp_path / "data", env, tmp_path / "service.log").start()
    assert service.process is not None
    body = json.dumps({"source": "digits"}).encode()
    try:
        in_flight = open_request(service.port, body, sent=5)
        never_finished = open_request(service.port, body, sent=5)
        time.sleep(1)  # both requests are read and waiting for the rest of their bodies
        os.kill(service.process.pid, signal.SIGTERM)  # the main process only, like docker
        sigterm = time.monotonic()
        time.sleep(1)
        in_flight.sendall(body[5:])
        assert read_status(in_flight) == 201
        exit_code = service.process.wait(GRACE_SECONDS + 15)
        took = time.monotonic() - sigterm
        # uvicorn re-raises the signal once shut down: "killed by SIGTERM", after a clean stop.
        assert exit_code in {0, -signal.SIGTERM}, service.log_path.read_text()
        assert took < GRACE_SECONDS + 10, f"exited {took:.1f} s after SIGTERM"
        never_finished.close()
    finally:
        service.stop()
