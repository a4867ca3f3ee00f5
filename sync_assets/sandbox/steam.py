"""Stand-ins for the Steam Web API app list and the Steam store's appdetails endpoint.

- `/steam-api/ISteamApps/GetAppList/v2/` -> `{"applist": {"apps": [{"appid", "name"}, ...]}}`,
  a deterministic catalog of `catalog_size` apps (some with empty names, one listed twice, as
  the real list did), generated on request so any size costs no memory at rest. With
  `configure({"v2_removed": True})` it answers what Valve has answered since November 2025:
  HTTP 404 "Method 'GetAppList' not found in interface 'ISteamApps'".
- `/steam-api/IStoreService/GetAppList/v1/?key=K&max_results=N&last_appid=A` -> the same
  catalog (each app once, in appid order), N apps (default 10,000, at most 50,000) after A:
  `{"response": {"apps": [{"appid", "name", "last_modified", "price_change_number"}, ...],
  "have_more_results": true, "last_appid": A2}}`, `have_more_results` left out of the last
  page. No key: HTTP 401; a key other than `api_key` (default `DEMO_API_KEY`): HTTP 403, both
  with Steam's HTML "Access is denied. Retrying will not help." body.
- `/steam-store/api/appdetails?appids=N` -> `{"N": {"success": true, "data": {...}}}` with the
  store's quirks (see `shared/reference/steam/`): numbers as strings (genre ids, required_age,
  fullgame appid), `[]` where an object is expected (`linux_requirements`, `price_overview` on
  some apps), HTML in descriptions, localized release dates, no `price_overview` for free apps,
  and `{"N": {"success": false}}` for apps that are not available.

Per-app behaviours (`configure({"behaviours": {"570": "failing"}})`): `ok`, `unavailable`
(success false), `notfound` (HTTP 404), `slow` (`slow_seconds`), `failing` (HTTP 500),
`malformed` (a truncated JSON body), `redirect` (success, under the app's own key, with the
data of the app 10 before it, as 209660 answers with 209650's). Every 13th app is unavailable
by default. Recorded answers (`{"answers": {"40400": <a whole appdetails body>}}`) are replayed
verbatim, and the app list takes `extra_apps`, `removed` (appids) and `catalog_size`.

The store's limiter (`configure({"rate_limit": {"requests": 100, "seconds": 1}})`, off by
default) admits `requests` per sliding window of `seconds`; above it, 429 with `Retry-After`;
after `block_after` rejected requests in one window it answers 403 (an HTML "Access Denied", as
the store does) to everything for `block_seconds`. `latency` delays every store answer.
"""

from __future__ import annotations

import heapq
import json
import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from sync_assets.sandbox.server import Provider, Request, Response

API_PREFIX = "/steam-api"
STORE_PREFIX = "/steam-store"
DEFAULT_CATALOG_PER_SCALE = 300
# The Web API key the v1 app list accepts (tests set their own with `configure({"api_key"})`).
DEMO_API_KEY = "5A4DB0C5D3E94F0E8A1B2C3D4E5F6A7B"
DEFAULT_MAX_RESULTS = 10_000
MAX_RESULTS = 50_000
UNAVAILABLE_EVERY = 13

GENRES = [("1", "Action"), ("2", "Strategy"), ("3", "RPG"), ("23", "Indie"), ("25", "Adventure")]
CATEGORIES = [(2, "Single-player"), (1, "Multi-player"), (9, "Co-op"), (22, "Steam Achievements")]
CURRENCIES = ["USD", "EUR", "CNY", "CAD"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
FRENCH_MONTHS = ["janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept."]


def appid_at(index: int) -> int:
    """The appid of the catalog's `index`-th app (Steam appids are mostly multiples of 10)."""
    return 10 + index * 10


def index_of(appid: int) -> int | None:
    if appid < 10 or appid % 10:
        return None
    return (appid - 10) // 10


def app_name(appid: int) -> str:
    index = index_of(appid) or 0
    if index % 997 == 5:
        return ""  # the real list carries nameless apps
    if index % 7 == 3:
        return f"Café Söldner {appid} — Édition spéciale"
    return f"Sandbox Game {appid}"


def release_text(appid: int) -> tuple[bool, str]:
    """A localized release date as the store writes it, and whether the app is coming soon."""
    n = appid // 10
    day, month, year = n % 28 + 1, n % 12, 2005 + n % 20
    style = n % 9
    if style == 0:
        return True, "Coming soon"
    if style == 1:
        return True, f"Q{n % 4 + 1} {year + 2}"
    if style == 2:
        return False, f"{year} 年 {month + 1} 月 {day} 日"
    if style == 3:
        return False, f"{day} {FRENCH_MONTHS[month % 9]} {year}"
    if style == 4:
        return False, f"{MONTHS[month]} {day}, {year}"
    if style == 5:
        return False, ""
    return False, f"{day} {MONTHS[month]}, {year}"


def app_details(appid: int, *, catalog_name: str | None = None) -> dict[str, Any]:
    """The `data` object of an available app, with the store's quirks."""
    n = appid // 10
    is_dlc = n % 11 == 4
    is_free = n % 5 == 0
    coming_soon, date_text = release_text(appid)
    data: dict[str, Any] = {
        "type": "dlc" if is_dlc else "game",
        "name": catalog_name or app_name(appid) or f"Untitled {appid}",
        "steam_appid": appid,
        "required_age": str(18) if n % 23 == 0 else (16 if n % 17 == 0 else 0),
        "is_free": is_free,
        "detailed_description": f"<h1>About</h1><p>App {appid} &quot;rocks&quot;<br></p>",
        "short_description": f"App {appid} &amp; friends",
        "header_image": f"https://shared.akamai.steamstatic.com/store_item_assets/steam/apps/{appid}/header.jpg?t=1",
        "website": None,
        "pc_requirements": {"minimum": '<strong>Minimum:</strong><br><ul class="bb_ul"></ul>'},
        "mac_requirements": [],
        "linux_requirements": [],
        "developers": [f"Studio {n % 50}"] + (["Co-dev Ltd."] if n % 4 == 0 else []),
        "publishers": [f"Publisher {n % 30}"],
        "platforms": {"windows": True, "mac": n % 3 == 0, "linux": n % 6 == 0},
        "categories": [{"id": c, "description": d} for c, d in CATEGORIES[: n % 4 + 1]],
        "genres": [{"id": g, "description": d} for g, d in GENRES[: n % 3 + 1]],
        "release_date": {"coming_soon": coming_soon, "date": date_text},
        "content_descriptors": {"ids": [], "notes": None},
        "ratings": None,
    }
    if is_dlc:
        parent = max(10, appid - 30)
        data["fullgame"] = {"appid": str(parent), "name": app_name(parent)}
    if n % 19 == 7:
        del data["developers"]  # some apps omit it entirely
    if not is_free:
        initial = 499 + (n % 12) * 500
        discount = (n % 4) * 25 if n % 4 != 3 else 0
        final = initial * (100 - discount) // 100
        currency = CURRENCIES[n % len(CURRENCIES)]
        data["price_overview"] = {
            "currency": currency,
            "initial": initial,
            "final": final,
            "discount_percent": discount,
            "initial_formatted": f"{initial / 100:.2f}" if discount else "",
            "final_formatted": f"{final / 100:.2f} {currency}",
        }
    if n % 8 == 1:
        data["metacritic"] = {"score": 50 + n % 50, "url": "https://www.metacritic.com/game/x"}
    if n % 2 == 0:
        data["recommendations"] = {"total": n * 3}
    return data


class _SlidingWindowLimiter:
    """The store's throttle: 429 above `requests` per `seconds`, then 403 for a while."""

    def __init__(
        self, requests: int, seconds: float, block_after: int = 50, block_seconds: float = 30.0
    ) -> None:
        self.requests = requests
        self.seconds = seconds
        self.block_after = block_after
        self.block_seconds = block_seconds
        self.accepted: deque[float] = deque()
        self.rejected: deque[float] = deque()
        self.blocked_until = 0.0
        self.lock = threading.Lock()
        self.counts = {"accepted": 0, "throttled": 0, "blocked": 0}

    def check(self) -> Response | None:
        now = time.monotonic()
        with self.lock:
            if now < self.blocked_until:
                self.counts["blocked"] += 1
                return _access_denied()
            for window in (self.accepted, self.rejected):
                while window and window[0] <= now - self.seconds:
                    window.popleft()
            if len(self.accepted) < self.requests:
                self.accepted.append(now)
                self.counts["accepted"] += 1
                return None
            self.rejected.append(now)
            if len(self.rejected) >= self.block_after:
                self.blocked_until = now + self.block_seconds
                self.rejected.clear()
                self.counts["blocked"] += 1
                return _access_denied()
            self.counts["throttled"] += 1
            wait = max(1, math.ceil(self.accepted[0] + self.seconds - now))
            return Response.json(None, status=429, headers={"Retry-After": str(wait)})


def _access_denied() -> Response:
    body = b"<HTML><HEAD><TITLE>Access Denied</TITLE></HEAD><BODY>Access Denied</BODY></HTML>"
    return Response(403, body, {"Content-Type": "text/html"})


class SteamApiProvider(Provider):
    """The Web API's app lists: `ISteamApps/GetAppList/v2/`, `IStoreService/GetAppList/v1/`."""

    prefix = API_PREFIX

    def __init__(self, catalog_size: int) -> None:
        self.catalog_size = catalog_size
        self.removed: set[int] = set()
        self.extra_apps: list[dict[str, Any]] = []
        self.latency = 0.0
        self.api_key = DEMO_API_KEY
        self.v2_removed = False

    def configure(self, settings: dict[str, Any]) -> None:
        if "catalog_size" in settings:
            self.catalog_size = int(settings["catalog_size"])
        if "removed" in settings:
            self.removed = {int(a) for a in settings["removed"]}
        if "extra_apps" in settings:
            self.extra_apps = list(settings["extra_apps"])
        if "latency" in settings:
            self.latency = float(settings["latency"])
        if "api_key" in settings:
            self.api_key = str(settings["api_key"])
        if "v2_removed" in settings:
            self.v2_removed = bool(settings["v2_removed"])

    def handle(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        if path == "/ISteamApps/GetAppList/v2":
            response = _method_removed() if self.v2_removed else self._json(self._app_list())
        elif path == "/IStoreService/GetAppList/v1":
            key = request.query.get("key") or request.headers.get("x-webapi-key", "")
            if not key:
                return _key_refused(401, "Unauthorized")
            if key != self.api_key:
                return _key_refused(403, "Forbidden")
            response = self._json(self._store_page(request.query))
        else:
            return Response(404, b"<html><body>Not Found</body></html>", {})
        response.delay = self.latency
        return response

    @staticmethod
    def _json(body: bytes) -> Response:
        return Response(200, body, {"Content-Type": "application/json"})

    def _listed(self, after: int) -> Iterator[dict[str, Any]]:
        """The catalog past appid `after`, once each, in appid order (v1's), extras merged in."""
        first = max(0, (after - 10) // 10 + 1)
        generated = (
            {"appid": appid_at(index), "name": app_name(appid_at(index))}
            for index in range(first, self.catalog_size)
        )
        extras = sorted(
            (a for a in self.extra_apps if isinstance(a.get("appid"), int) and a["appid"] > after),
            key=lambda a: a["appid"],
        )
        for app in heapq.merge(generated, extras, key=lambda a: a["appid"]):
            if app["appid"] not in self.removed:
                yield app

    def _store_page(self, query: dict[str, str]) -> bytes:
        size = min(MAX_RESULTS, max(1, _int(query.get("max_results"), DEFAULT_MAX_RESULTS)))
        after = _int(query.get("last_appid"), 0)
        page: list[dict[str, Any]] = []
        more = False
        for app in self._listed(after):
            if app["appid"] <= after:
                continue
            if len(page) == size:
                more = True
                break
            appid = app["appid"]
            page.append(
                {
                    "appid": appid,
                    "name": app.get("name") or "",
                    "last_modified": 1_700_000_000 + appid,
                    "price_change_number": 20_000_000 + appid,
                }
            )
        body: dict[str, Any] = {"apps": page}
        if more:  # Steam leaves have_more_results out of the last page
            body["have_more_results"] = True
        if page:
            body["last_appid"] = page[-1]["appid"]
        return json.dumps({"response": body}).encode()

    def _app_list(self) -> bytes:
        def entries():
            for index in range(self.catalog_size):
                appid = appid_at(index)
                if appid not in self.removed:
                    yield json.dumps({"appid": appid, "name": app_name(appid)}).encode()
            repeated = appid_at(2)
            if self.catalog_size > 3 and repeated not in self.removed:  # as the real list does
                yield json.dumps({"appid": repeated, "name": app_name(repeated)}).encode()
            for extra in self.extra_apps:
                yield json.dumps(extra).encode()

        return b'{"applist":{"apps":[' + b",".join(entries()) + b"]}}"


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


def _method_removed() -> Response:
    """What api.steampowered.com answers to ISteamApps/GetAppList since November 2025."""
    body = (
        b"<html><head><title>Not Found</title></head><body><h1>Not Found</h1>"
        b"Method 'GetAppList' not found in interface 'ISteamApps'</body></html>"
    )
    return Response(404, body, {"Content-Type": "text/html"})


def _key_refused(status: int, title: str) -> Response:
    """Steam's answer to a missing (401) or unknown (403) key."""
    body = (
        f"<html><head><title>{title}</title></head><body><h1>{title}</h1>Access is denied."
        f" Retrying will not help. Please verify your <pre>key=</pre> parameter.</body></html>"
    )
    return Response(status, body.encode(), {"Content-Type": "text/html"})


class SteamStoreProvider(Provider):
    """The store's `/api/appdetails?appids=N`."""

    prefix = STORE_PREFIX

    def __init__(self, api: SteamApiProvider) -> None:
        self.api = api
        self.reset()

    def reset(self) -> None:
        self.behaviours: dict[int, str] = {}
        self.answers: dict[int, Any] = {}
        self.latency = 0.0
        self.slow_seconds = 2.0
        self.limiter: _SlidingWindowLimiter | None = None

    def configure(self, settings: dict[str, Any]) -> None:
        if settings.get("reset"):
            self.reset()
        if "behaviours" in settings:
            self.behaviours.update({int(k): v for k, v in settings["behaviours"].items()})
        if "answers" in settings:
            self.answers.update({int(k): v for k, v in settings["answers"].items()})
        if "latency" in settings:
            self.latency = float(settings["latency"])
        if "slow_seconds" in settings:
            self.slow_seconds = float(settings["slow_seconds"])
        if "rate_limit" in settings:
            limit = settings["rate_limit"]
            self.limiter = _SlidingWindowLimiter(**limit) if limit else None

    def behaviour(self, appid: int) -> str:
        if appid in self.behaviours:
            return self.behaviours[appid]
        index = index_of(appid)
        if index is None or index >= self.api.catalog_size:
            return "unavailable"
        return "unavailable" if index % UNAVAILABLE_EVERY == 6 else "ok"

    def handle(self, request: Request) -> Response:
        response = self._answer(request)
        response.delay += self.latency
        return response

    def _answer(self, request: Request) -> Response:
        if request.path.rstrip("/") != "/api/appdetails":
            return Response(404, b"<html><body>Not Found</body></html>", {})
        if self.limiter is not None:
            refused = self.limiter.check()
            if refused is not None:
                return refused
        raw = request.query.get("appids", "")
        if not raw.isdigit() or "," in raw:
            return Response.json(None)  # the store answers `null` to a bad or multi-app query
        appid = int(raw)
        if appid in self.answers:
            return Response.json(self.answers[appid])
        behaviour = self.behaviour(appid)
        if behaviour == "notfound":
            return Response(404, b"<html><body>Not Found</body></html>", {})
        if behaviour == "failing":
            return Response(500, b"<html><body>Internal Server Error</body></html>", {})
        if behaviour == "malformed":
            return Response(200, b'{"%d": {"success": true, "data": {"type": "ga' % appid, {})
        if behaviour == "unavailable":
            return Response.json({str(appid): {"success": False}})
        if behaviour == "redirect":
            data = app_details(appid - 10)
            return Response.json({str(appid): {"success": True, "data": data}})
        response = Response.json({str(appid): {"success": True, "data": app_details(appid)}})
        if behaviour == "slow":
            response.delay = self.slow_seconds
        return response


def providers(scale: float) -> list[Provider]:
    api = SteamApiProvider(catalog_size=max(20, int(DEFAULT_CATALOG_PER_SCALE * scale)))
    return [api, SteamStoreProvider(api)]


def environment(server_url: str) -> dict[str, str]:
    return {
        "STEAM_STORE_BASE_URL": server_url + STORE_PREFIX,
        "STEAM_API_BASE_URL": server_url + API_PREFIX,
        "STEAM_API_KEY": DEMO_API_KEY,
        # The sandbox has no throttle by default; a fast pace keeps the demo short.
        "STEAM_STORE_RATE_LIMIT": "50/1",
    }
