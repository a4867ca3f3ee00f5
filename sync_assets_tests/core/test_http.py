"""The HTTP client base against a real server on loopback: retries, Retry-After, limits, redaction."""

from __future__ import annotations

import logging
import threading
import time
from email.utils import formatdate

import pytest

from sync_assets.core.http import ApiClient, ApiError, token_bucket
from sync_assets.core.redaction import redact, register_secret
from sync_assets.sandbox.server import Provider, Request, Response, SandboxServer

SECRET = "sk_live_core_http_0123456789"


class EchoProvider(Provider):
    prefix = "/echo"

    def handle(self, request: Request) -> Response:
        return Response.json({"path": request.path, "query": request.query})


@pytest.fixture(scope="module")
def server():
    box = SandboxServer([EchoProvider()]).start()
    yield box
    box.stop()


@pytest.fixture(autouse=True)
def no_faults(server: SandboxServer):
    server.faults.clear()
    yield
    server.faults.clear()


@pytest.fixture
def client(server: SandboxServer) -> ApiClient:
    return ApiClient(
        server.base_url("/echo"), secrets=(SECRET,), backoff_factor=0.05, max_retries=4
    )


def test_plain_get(client: ApiClient) -> None:
    assert client.get_json("/things", {"a": "1"}) == {"path": "/things", "query": {"a": "1"}}
    assert client.stats.requests == 1 and client.stats.retries == 0


@pytest.mark.parametrize("status", [429, 499, 500, 502, 503, 504, 520, 522, 524])
def test_retries_transient_statuses(server: SandboxServer, client: ApiClient, status: int) -> None:
    server.faults.add(path="/echo/x", kind="status", status=status, count=2)
    assert client.get_json("/x")["path"] == "/x"
    assert client.stats.retries == 2


def test_retry_after_seconds_is_waited(server: SandboxServer, client: ApiClient) -> None:
    server.faults.add(path="/echo/x", kind="status", status=429, retry_after="1", count=1)
    started = time.monotonic()
    client.get_json("/x")
    assert time.monotonic() - started >= 0.95
    assert client.stats.retry_waits and client.stats.retry_waits[0] >= 0.95


def test_retry_after_http_date_is_waited(server: SandboxServer, client: ApiClient) -> None:
    when = formatdate(time.time() + 2, usegmt=True)
    server.faults.add(path="/echo/x", kind="status", status=503, retry_after=when, count=1)
    started = time.monotonic()
    client.get_json("/x")
    assert time.monotonic() - started >= 0.9  # second resolution of HTTP dates


@pytest.mark.parametrize("hint", ["0", "-5", "soon"])
def test_retry_after_zero_negative_or_junk_means_backoff(
    server: SandboxServer, client: ApiClient, hint: str
) -> None:
    server.faults.add(path="/echo/x", kind="status", status=429, retry_after=hint, count=1)
    started = time.monotonic()
    client.get_json("/x")
    assert time.monotonic() - started < 1.0
    assert client.stats.retries == 1


def test_retry_after_is_capped(server: SandboxServer) -> None:
    capped = ApiClient(server.base_url("/echo"), retry_after_cap=0.5, backoff_factor=0.01)
    server.faults.add(path="/echo/x", kind="status", status=429, retry_after="3600", count=1)
    started = time.monotonic()
    capped.get_json("/x")
    assert 0.45 <= time.monotonic() - started < 3


def test_exhausted_retries_raise_a_redacted_error(server: SandboxServer, client: ApiClient) -> None:
    server.faults.add(path="/echo/x", kind="status", status=500, count=-1)
    with pytest.raises(ApiError) as failure:
        client.get_json("/x", {"key": SECRET})
    assert failure.value.status == 500 and failure.value.retryable
    assert client.stats.retries == 4
    assert SECRET not in str(failure.value)


def test_connection_errors_are_retried_then_redacted(caplog: pytest.LogCaptureFixture) -> None:
    dead = ApiClient("http://127.0.0.1:9", secrets=(SECRET,), backoff_factor=0.01, max_retries=2)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ApiError) as failure:
        dead.get_json("/user/", {"key": SECRET})
    assert failure.value.__cause__ is None and failure.value.__context__ is None
    assert SECRET not in str(failure.value)
    assert "Retrying" in caplog.text  # urllib3's own retry warnings were emitted...
    assert SECRET not in caplog.text  # ...with the key in the URL masked


def test_timeouts_apply_to_every_request(server: SandboxServer) -> None:
    slow = ApiClient(server.base_url("/echo"), read_timeout=0.3, max_retries=0)
    server.faults.add(path="/echo/x", kind="slow", delay=1.5, count=1)
    started = time.monotonic()
    with pytest.raises(ApiError, match="Timeout"):
        slow.get_json("/x")
    assert time.monotonic() - started < 1.2


def test_malformed_json_is_a_clear_error(server: SandboxServer, client: ApiClient) -> None:
    server.faults.add(path="/echo/x", kind="malformed", count=1)
    with pytest.raises(ApiError, match="not JSON"):
        client.get_json("/x")


def test_token_bucket_is_shared_by_threads(server: SandboxServer) -> None:
    limited = ApiClient(server.base_url("/echo"), limiter=token_bucket(10, 1.0, burst=1))
    started = time.monotonic()
    threads = [threading.Thread(target=limited.get_json, args=("/x",)) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert limited.stats.requests == 12
    assert 1.0 <= elapsed < 3.0  # 12 requests at 10/s with no burst: about 1.1 s


def test_redaction_covers_url_encoded_forms() -> None:
    register_secret("p@ss word/+")
    assert "p@ss" not in redact("GET /x?key=p%40ss+word%2F%2B and p%40ss%20word%2F%2B")
