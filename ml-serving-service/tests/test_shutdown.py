"""SIGTERM drains the service: requests started before the signal get their 200, new
connections are refused once the listener closes, and the process exits 0 within the grace.

The clients send half of each body, the signal goes out, and only then the rest: the requests
are provably in flight when the service is told to stop.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

import httpx
import orjson

from tests.conftest import Digits
from tests.support import MlflowServer, start_service, wait_until

GRACE = 6
CLIENTS = 12


class HalfSentRequests:
    """Clients posting a batch in two chunks; the second waits for `release()`."""

    def __init__(self, url: str, body: bytes, clients: int) -> None:
        self.url = url
        self.body = body
        self.statuses: list[int | str] = []
        self.half_sent = threading.Semaphore(0)
        self._release = threading.Event()
        self._threads = [threading.Thread(target=self._post, daemon=True) for _ in range(clients)]
        for thread in self._threads:
            thread.start()
        for _ in range(clients):
            assert self.half_sent.acquire(timeout=30), "a client could not connect"

    def _chunks(self) -> Iterator[bytes]:
        middle = len(self.body) // 2
        yield self.body[:middle]
        self.half_sent.release()  # httpx asks for the next chunk once the first is written
        self._release.wait(timeout=60)
        yield self.body[middle:]

    def _post(self) -> None:
        try:
            r = httpx.post(self.url, content=self._chunks(), timeout=60,
                           headers={"content-type": "application/json"})  # fmt: skip
            self.statuses.append(r.status_code)
        except httpx.HTTPError as exc:
            self.statuses.append(repr(exc))

    def release(self) -> None:
        self._release.set()

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=60)


def _refuses_connections(url: str) -> bool:
    try:
        httpx.get(f"{url}/health", timeout=1)
    except httpx.ConnectError:
        return True
    return False


def test_sigterm_finishes_in_flight_requests_and_exits_zero(
    mlflow_server: MlflowServer, production_model: str, digits: Digits
) -> None:
    svc = start_service(
        MLFLOW_TRACKING_URI=mlflow_server.url,
        ENVIRONMENT="local",
        SHUTDOWN_GRACE_SECONDS=str(GRACE),
    )
    try:
        wait_until(lambda: httpx.get(f"{svc.url}/ready").status_code == 200, timeout=120)
        images = digits.x_test[:256, 0].tolist()
        body = orjson.dumps({"instances": images})
        in_flight = HalfSentRequests(f"{svc.url}/v1/predict", body, CLIENTS)
        # One more client that never finishes its body: the grace period must end it.
        stuck = HalfSentRequests(f"{svc.url}/v1/predict", body, 1)
        time.sleep(0.5)  # let the service read every request's headers
        svc.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        wait_until(lambda: _refuses_connections(svc.url), timeout=GRACE)
        in_flight.release()
        in_flight.join()
        assert in_flight.statuses == [200] * CLIENTS
        returncode = svc.proc.wait(timeout=GRACE + 15)
        stopped_after = time.monotonic() - signalled
        assert returncode == 0
        print(f"exited {stopped_after:.1f} s after SIGTERM (grace {GRACE} s)")
        assert stopped_after < GRACE + 10
        stuck.release()
    finally:
        svc.stop()
