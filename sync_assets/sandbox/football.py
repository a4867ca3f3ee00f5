"""A stand-in for API-Football v3 (`https://v3.football.api-sports.io`): `/leagues`, `/countries`.

Every answer carries the v3 envelope `{"get", "parameters", "errors", "results", "paging",
"response"}` and the service's quirks (see `shared/reference/api-football/`):

- the key travels in the `x-apisports-key` header; a missing or wrong key is answered with
  HTTP 200 and `errors: {"token": ...}` (no data), as the real service does;
- empty `parameters` / `errors` are JSON arrays (`[]`), non-empty ones objects;
- every answer has the per-day (`x-ratelimit-requests-limit/-remaining`) and per-minute
  (`X-RateLimit-Limit/-Remaining`) headers; above the per-minute limit the answer is HTTP 200
  with `errors: {"rateLimit": ...}`, above the daily quota `errors: {"requests": ...}`;
- a "World" country with null `code` and `flag`, several countries sharing one code (the UK
  nations all "GB"), cups and leagues, a league that lists the same season year twice, leagues
  with more than one `current` season, cup seasons starting the year before their `year`, and
  league names that only differ by accents (so their slugs collide).

Data is generated deterministically: about 1,200 leagues per unit of scale with 1 to 15 seasons
each. The answer body is built once per configuration and kept as bytes.

`configure({...})` takes: `leagues` (count), `keys` (accepted keys), `per_minute`, `per_day`
(limits; default 300 and 75,000), `invalid_every` (every Nth league item breaks the schema,
rotating through the ways real payloads go wrong), `page_size` (answer `/leagues` in pages), `answers` (`{"/leagues": <body>}`: replayed
verbatim, for recorded reference answers), `reset` (clear counters and all of the above).
Faults (429 with `Retry-After`, 5xx bursts, 499, slow, malformed, a rate-limit error inside a 200
body via `rate_limit_body()`, the service's 429 without `Retry-After` via
`too_many_requests_body()`) come from the server's fault rules.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any

from sync_assets.sandbox.server import Provider, Request, Response

PREFIX = "/football"
DEMO_KEY = "sandbox-football-demo-key-0c1d"
LEAGUES_PER_SCALE = 1_200
LAST_YEAR = 2025

TOKEN_ERROR = (
    "Error/Missing application key. Go to https://www.api-football.com/documentation-v3 "
    "to learn how to get your API application key."
)
RATE_LIMIT_ERROR = "Too many requests. Your rate limit is {limit} requests per minute."
TOO_MANY_REQUESTS_ERROR = "Too many requests. You have reached your per-minute request limit."
DAILY_LIMIT_ERROR = (
    "You have reached the request limit for the day, Go to https://dashboard.api-football.com "
    "to upgrade your plan."
)

# (name, code): real ones first, including the quirks, then generated ones.
REAL_COUNTRIES = [
    ("World", None),
    ("England", "GB"),
    ("Scotland", "GB"),
    ("Wales", "GB"),
    ("Northern-Ireland", "GB"),
    ("Albania", "AL"),
    ("Algeria", "DZ"),
    ("Argentina", "AR"),
    ("Brazil", "BR"),
    ("Côte d'Ivoire", "CI"),
    ("Curaçao", "CW"),
    ("France", "FR"),
    ("Germany", "DE"),
    ("Italy", "IT"),
    ("Spain", "ES"),
    ("Türkiye", "TR"),
    ("USA", "US"),
    ("Bosnia", "BA"),
    ("Faroe-Islands", "FO"),
    ("Korea-Republic", "KR"),
]
GENERATED_COUNTRIES = 150
LEAGUE_NAMES = [
    ("Premier League", "League"),
    ("Championship", "League"),
    ("Primera División", "League"),
    ("Cup", "Cup"),
    ("Super Cup", "Cup"),
    ("Division 2", "League"),
    ("Women's League", "League"),
    ("U21 League", "League"),
    ("League Cup", "Cup"),
    ("Reserve League", "League"),
]


def rate_limit_body(endpoint: str = "leagues", limit: int = 10) -> dict[str, Any]:
    """The answer (HTTP 200) the service gives above the per-minute limit."""
    return envelope(endpoint, {}, [], errors={"rateLimit": RATE_LIMIT_ERROR.format(limit=limit)})


def too_many_requests_body(endpoint: str = "leagues", in_envelope: bool = False) -> dict[str, Any]:
    """The body of the service's HTTP 429 (sent without `Retry-After`): bare or in the envelope."""
    if in_envelope:
        return envelope(endpoint, {}, [], errors={"rateLimit": TOO_MANY_REQUESTS_ERROR})
    return {"rateLimit": TOO_MANY_REQUESTS_ERROR}


def envelope(
    endpoint: str,
    parameters: dict[str, str],
    response: list[Any],
    errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The v3 envelope; PHP's empty arrays stay `[]` as the real service sends them."""
    return {
        "get": endpoint,
        "parameters": parameters or [],
        "errors": errors or [],
        "results": len(response),
        "paging": {"current": 1, "total": 1},
        "response": response,
    }


def _code_for(index: int) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return (
        "X" + letters[index % 26] if index < 26 else letters[index // 26 % 26] + letters[index % 26]
    )


def countries() -> list[dict[str, Any]]:
    """Every country as `/countries` lists it (World first, with null code and flag)."""
    rows = []
    for name, code in REAL_COUNTRIES:
        flag = f"https://media.api-sports.io/flags/{code.lower()}.svg" if code else None
        rows.append({"name": name, "code": code, "flag": flag})
    for i in range(GENERATED_COUNTRIES):
        code = _code_for(i)
        rows.append(
            {
                "name": f"Sandland {i + 1:03d}",
                "code": code,
                "flag": f"https://media.api-sports.io/flags/{code.lower()}.svg",
            }
        )
    return rows


def _bit(league_id: int, year: int, salt: str) -> bool:
    digest = hashlib.blake2b(f"{league_id}:{year}:{salt}".encode(), digest_size=1).digest()
    return digest[0] % 3 != 0


def _coverage(league_id: int, year: int) -> dict[str, Any]:
    recent = year >= LAST_YEAR - 8
    return {
        "fixtures": {
            "events": True,
            "lineups": _bit(league_id, year, "lineups"),
            "statistics_fixtures": recent and _bit(league_id, year, "sf"),
            "statistics_players": recent and _bit(league_id, year, "sp"),
        },
        "standings": _bit(league_id, year, "standings"),
        "players": _bit(league_id, year, "players"),
        "top_scorers": _bit(league_id, year, "ts"),
        "top_assists": _bit(league_id, year, "ta"),
        "top_cards": _bit(league_id, year, "tc"),
        "injuries": recent and _bit(league_id, year, "inj"),
        "predictions": True,
        "odds": recent and _bit(league_id, year, "odds"),
    }


def league_id_at(index: int) -> int:
    """Provider ids are sparse: a gap after every 40 leagues."""
    return 1 + index + index // 40


def league_item(index: int, country_list: list[dict[str, Any]]) -> dict[str, Any]:
    """The `index`-th league as `/leagues` lists it, seasons and coverage included."""
    league_id = league_id_at(index)
    country_index, slot = index % len(country_list), index // len(country_list)
    country = country_list[country_index]
    name, kind = LEAGUE_NAMES[(country_index + slot) % len(LEAGUE_NAMES)]
    if slot >= len(LEAGUE_NAMES):
        name = f"{name} {slot // len(LEAGUE_NAMES) + 1}"
    if country["name"] == "Brazil" and slot in (0, 1):
        # "Primera División" and "Primera Division" in one country: the same slug.
        name, kind = ("Primera División", "League") if slot == 0 else ("Primera Division", "League")
    n_seasons = 1 + (league_id * 7) % 15
    seasons = []
    for year in range(LAST_YEAR - n_seasons + 1, LAST_YEAR + 1):
        if kind == "Cup" and league_id % 3 == 0:
            start, end = f"{year - 1}-03-21", f"{year + 1}-07-11"
        else:
            start, end = f"{year}-08-{1 + league_id % 20:02d}", f"{year + 1}-05-{1 + year % 28:02d}"
        seasons.append(
            {
                "year": year,
                "start": start,
                "end": end,
                "current": year == LAST_YEAR,
                "coverage": _coverage(league_id, year),
            }
        )
    if league_id % 97 == 3 and len(seasons) > 1:
        seasons[-2]["current"] = True  # more than one current season
    if league_id % 89 == 5:
        twice = dict(seasons[-1], start=f"{LAST_YEAR}-01-15", current=False)
        seasons.append(twice)  # the same season year listed twice
    return {
        "league": {
            "id": league_id,
            "name": name,
            "type": kind,
            "logo": f"https://media.api-sports.io/football/leagues/{league_id}.png",
        },
        "country": dict(country),
        "seasons": seasons,
    }


def break_item(item: dict[str, Any], way: int) -> dict[str, Any]:
    """Damage one league item the ways real payloads go wrong (for threshold tests)."""
    broken = json.loads(json.dumps(item))
    match way % 6:
        case 0:
            broken["league"]["id"] = "n/a"
        case 1:
            broken["league"]["name"] = None
        case 2:
            broken["seasons"][0]["year"] = None
        case 3:
            broken["seasons"][0]["start"] = "31/12/2020"
        case 4:
            broken["league"]["type"] = "Tournament"
        case _:
            broken["seasons"][0]["coverage"] = None
    return broken


class FootballProvider(Provider):
    """`/football/leagues` and `/football/countries` of API-Football v3."""

    prefix = PREFIX

    def __init__(self, scale: float = 1.0) -> None:
        self.default_leagues = max(1, round(LEAGUES_PER_SCALE * scale))
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.leagues = self.default_leagues
        self.keys = {DEMO_KEY}
        self.per_minute = 300
        self.per_day = 75_000
        self.invalid_every = 0
        self.page_size = 0
        self.answers: dict[str, Any] = {}
        self.minute: list[float] = []
        self.used_today = 0
        self._cache: dict[tuple, bytes] = {}

    def configure(self, settings: dict[str, Any]) -> None:
        with self._lock:
            if settings.get("reset"):
                self.reset()
            if "leagues" in settings:
                self.leagues = int(settings["leagues"])
            if "keys" in settings:
                self.keys = set(settings["keys"])
            for name in ("per_minute", "per_day", "invalid_every", "page_size"):
                if name in settings:
                    setattr(self, name, int(settings[name]))
            if "answers" in settings:
                self.answers = dict(settings["answers"])
            self._cache.clear()

    def _limit_headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-requests-limit": str(self.per_day),
            "x-ratelimit-requests-remaining": str(max(0, self.per_day - self.used_today)),
            "X-RateLimit-Limit": str(self.per_minute),
            "X-RateLimit-Remaining": str(max(0, self.per_minute - len(self.minute))),
        }

    def handle(self, request: Request) -> Response:
        endpoint = request.path.strip("/")
        params = dict(request.query)
        with self._lock:
            headers = self._limit_headers()
            if request.headers.get("x-apisports-key") not in self.keys:
                body = envelope(endpoint, params, [], errors={"token": TOKEN_ERROR})
                return Response.json(body, headers=headers)
            now = time.monotonic()
            self.minute = [t for t in self.minute if t > now - 60]
            if self.used_today >= self.per_day:
                body = envelope(endpoint, params, [], errors={"requests": DAILY_LIMIT_ERROR})
                return Response.json(body, headers=headers)
            if len(self.minute) >= self.per_minute:
                return Response.json(rate_limit_body(endpoint, self.per_minute), headers=headers)
            self.minute.append(now)
            self.used_today += 1
            headers = self._limit_headers()
            if request.path in self.answers:
                answer = self.answers[request.path]
                raw = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
                return Response(200, raw, {"Content-Type": "application/json", **headers})
            if endpoint not in ("leagues", "countries"):
                return Response.json({"message": f"Endpoint '{endpoint}' does not exist"}, 404)
            key = (endpoint, tuple(sorted(params.items())))
            if key not in self._cache:
                self._cache[key] = self._body(endpoint, params)
            body_bytes = self._cache[key]
        return Response(200, body_bytes, {"Content-Type": "application/json", **headers})

    def _body(self, endpoint: str, params: dict[str, str]) -> bytes:
        search = params.get("search")
        if search is not None and len(search) < 3:
            errors = {"search": "The Search field must be at least 3 characters in length."}
            return json.dumps(envelope(endpoint, params, [], errors=errors)).encode()
        country_list = countries()
        if endpoint == "countries":
            rows = [
                c
                for c in country_list
                if (not params.get("name") or c["name"] == params["name"])
                and (not params.get("code") or c["code"] == params["code"])
                and (not search or search.lower() in c["name"].lower())
            ]
            return json.dumps(envelope(endpoint, params, rows)).encode()
        items = []
        for index in range(self.leagues):
            item = league_item(index, country_list)
            if self.invalid_every and index % self.invalid_every == self.invalid_every - 1:
                item = break_item(item, index // self.invalid_every)
            if params.get("id") and str(item["league"]["id"]) != params["id"]:
                continue
            if params.get("country") and item["country"]["name"] != params["country"]:
                continue
            if params.get("type") and str(item["league"]["type"]).lower() != params["type"]:
                continue
            if search and search.lower() not in f"{item['league']['name']}".lower():
                continue
            items.append(item)
        if not self.page_size:
            return json.dumps(envelope(endpoint, params, items)).encode()
        # Paged the way API-Football pages its larger lists: `page` from 1, `paging.total`.
        page = int(params.get("page", "1") or 1)
        total = max(1, -(-len(items) // self.page_size))
        start = (page - 1) * self.page_size
        body = envelope(endpoint, params, items[start : start + self.page_size])
        body["paging"] = {"current": page, "total": total}
        return json.dumps(body).encode()


def providers(scale: float) -> list[Provider]:
    return [FootballProvider(scale)]


def environment(server_url: str) -> dict[str, str]:
    return {"API_FOOTBALL_BASE_URL": server_url + PREFIX, "SPORTS_PROVIDER_API_KEY": DEMO_KEY}
