"""Operations fixtures: the webhook stand-in alone on loopback, with ALERT_WEBHOOK_URL at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sync_assets.sandbox import webhook
from sync_assets.sandbox.server import SandboxServer


@pytest.fixture(scope="module")
def webhook_server() -> Iterator[SandboxServer]:
    server = SandboxServer(webhook.providers(1.0)).start()
    yield server
    server.stop()


@pytest.fixture
def alerts(webhook_server: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    """The webhook stand-in, emptied, with ALERT_WEBHOOK_URL pointing at it."""
    for key, value in webhook.environment(webhook_server.url).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DAGSTER_UI_URL", "http://dagster.example:3000/")
    webhook_server.faults.clear()
    with webhook_server._requests_lock:
        webhook_server.requests.clear()
    return webhook_server


def posted_texts(server: SandboxServer) -> list[str]:
    import json

    return [json.loads(r["body"])["text"] for r in server.recorded(webhook.PREFIX)]
