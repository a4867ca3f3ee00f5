"""The quotes API's stand-in (README step 5)."""

from sync_assets.sandbox.server import Provider, Request, Response

PREFIX = "/quotes-api"
DEMO_KEY = "demo-quotes-key"


class QuotesProvider(Provider):
    prefix = PREFIX

    def __init__(self, count: int = 3) -> None:
        self.count = count

    def handle(self, request: Request) -> Response:
        if request.headers.get("x-api-key") != DEMO_KEY:
            return Response.json({"error": "bad key"}, status=401)
        quotes = [{"id": n, "text": f"quote {n}"} for n in range(1, self.count + 1)]
        return Response.json({"quotes": quotes})


def providers(scale: float) -> list[Provider]:
    return [QuotesProvider(max(1, int(3 * scale)))]


def environment(server_url: str) -> dict[str, str]:
    return {"QUOTES_API_BASE_URL": server_url + PREFIX, "QUOTES_API_KEY": DEMO_KEY}
