"""A Slack-compatible incoming-webhook stand-in that records what the alert sensors post."""

from __future__ import annotations

from sync_assets.sandbox.server import Provider, Request, Response

PREFIX = "/hooks"
ALERTS_PATH = "/services/sandbox/alerts"


class WebhookProvider(Provider):
    """Answers like Slack: `200 ok` for a JSON body with `text`, `400 no_text` otherwise."""

    prefix = PREFIX

    def handle(self, request: Request) -> Response:
        if request.method != "POST":
            return Response(status=405, body=b"invalid_method")
        try:
            payload = request.json()
        except ValueError:
            return Response(status=400, body=b"invalid_payload")
        if not isinstance(payload, dict) or not payload.get("text"):
            return Response(status=400, body=b"no_text")
        return Response(status=200, body=b"ok", headers={"Content-Type": "text/plain"})


def providers(scale: float) -> list[Provider]:
    return [WebhookProvider()]


def environment(server_url: str) -> dict[str, str]:
    return {"ALERT_WEBHOOK_URL": f"{server_url}{PREFIX}{ALERTS_PATH}"}
