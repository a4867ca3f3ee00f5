"""Operations fixtures: the webhook stand-in alone on loopback, with ALERT_WEBHOOK_URL at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sync_assets.sandbox import webhook
from sync_assets.sandbox.server import SandboxServer
from sync_assets_tests.conftest import point_at, serve_providers


@pytest.fixture(scope="module")
def webhook_server() -> Iterator[SandboxServer]:
    yield from serve_providers(webhook)


@pytest.fixture
def alerts(webhook_server: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    """The webhook stand-in, emptied, with ALERT_WEBHOOK_URL pointing at it."""
    point_at(webhook_server, webhook, monkeypatch)
    monkeypatch.setenv("DAGSTER_UI_URL", "http://dagster.example:3000/")
    return webhook_server


def posted_texts(server: SandboxServer) -> list[str]:
    import json

    return [json.loads(r["body"])["text"] for r in server.recorded(webhook.PREFIX)]
