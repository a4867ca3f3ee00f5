"""Stand-in for the Torn API's `GET /user/?selections=basic&key=...`, and the app's user keys.

Answers as Torn does (see `shared/reference/torn/`): HTTP 200 for everything, errors inside the
body as `{"error": {"code": N, "error": "..."}}`; a profile is `{"level", "gender",
"player_id", "name", "status": {"description", "details", "state", "color", "until"}}`.

Users are numbered. User `i` has the app user id `user_id_at(i)` and the Torn key
`api_key_at(i)` (16 letters and digits, checked by the server: any other key is answered
"Incorrect key", code 2). Torn's per-key limit of 100 requests a minute answers code 5.

Per-user behaviours (`configure({"behaviours": {"3": "error:18", ...}})`, by user number):
`ok`; `error:N` (always code N); `error:N:K` (code N for the first K requests, then the
profile); `slow` (`slow_seconds`, then the profile); `http:S` (HTTP status S); `malformed`
(a truncated body); `invalid` (a profile without `player_id`). By default every 40th user's key
is incorrect (code 2) and every 50th is paused (code 18), so the demo shows failures;
`configure({"reset": True, "default_failures": False})` makes every user succeed.
`latency` delays every answer; `levels` (`{"3": 42}`) changes a player's level; `answers`
(`{"3": <a whole body>}`) replays a recorded answer verbatim for that user. `outage`
(`{"code": 8, "after": 5}`) answers every request after the next `after` with code N for every
key, as an IP ban (8) or a disabled API (9) does; `{"outage": None}` lifts it.

`seed_app_tables(scale)` fills the app's `user_keys` (in the torn schema) with every user's key
encrypted the Node app's way under the demo `ENCRYPTION_KEY` that `environment()` sets; every
40th row's ciphertext is tampered with, so the demo shows a key that will not decrypt.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Iterable
from typing import Any

from sync_assets.sandbox.server import Provider, Request, Response

PREFIX = "/torn"
USERS_PER_SCALE = 40
PER_KEY_LIMIT = 100  # requests per minute, across all of one player's keys
DEMO_ENCRYPTION_KEY = hashlib.sha256(b"sync_assets sandbox: torn demo ENCRYPTION_KEY").hexdigest()
_NAMESPACE = uuid.UUID("7b0f4c52-6d1e-4d55-9a53-2b8f5a4c9e10")
_KEY = re.compile(r"S(\d{7})([0-9a-f]{8})")

MESSAGES = {
    0: "Unknown error",
    1: "Key is empty",
    2: "Incorrect key",
    3: "Wrong type",
    4: "Wrong fields",
    5: "Too many requests",
    8: "IP block",
    9: "API disabled",
    10: "Key owner is in federal jail",
    12: "Key read error",
    13: "The key is temporarily disabled due to owner inactivity",
    14: "Daily read limit reached",
    15: "Temporary error",
    16: "Access level of this key is not high enough",
    17: "Backend error occurred, please try again",
    18: "API key has been paused by the owner",
}
STATES = [
    ("Okay", "Okay", "", "green"),
    ("Hospital", "In hospital for 12 mins", "Hospitalized by someone", "red"),
    ("Traveling", "Traveling to Mexico", "", "blue"),
    ("Jail", "In jail for 3 mins", "Caught", "red"),
]


def user_id_at(index: int) -> str:
    """The app's user id (a Supabase auth uuid) of sandbox user `index`."""
    return str(uuid.uuid5(_NAMESPACE, f"user-{index}"))


def api_key_at(index: int) -> str:
    """The Torn API key of sandbox user `index`: 16 letters and digits."""
    return f"S{index:07d}" + hashlib.sha256(f"torn-key-{index}".encode()).hexdigest()[:8]


def index_of_key(key: str) -> int | None:
    match = _KEY.fullmatch(key or "")
    if not match or api_key_at(int(match[1])) != key:
        return None
    return int(match[1])


def profile_at(index: int) -> dict[str, Any]:
    """The `selections=basic` answer of sandbox user `index`."""
    state, description, details, color = STATES[index % len(STATES)]
    return {
        "level": 1 + index % 100,
        "gender": ["Male", "Female", "Enby"][index % 3],
        "player_id": 2_000_000 + index * 13 + 1,
        "name": f"Sandbox_{index}",
        "status": {
            "description": description,
            "details": details,
            "state": state,
            "color": color,
            "until": 0 if state == "Okay" else 1_760_000_000 + index,
        },
    }


def error_body(code: int) -> dict[str, Any]:
    return {"error": {"code": code, "error": MESSAGES.get(code, "Unknown error")}}


class TornProvider(Provider):
    """`/user/?selections=basic&key=...` of the Torn API v1."""

    prefix = PREFIX

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.behaviours: dict[int, str] = {}
        self.levels: dict[int, int] = {}
        self.answers: dict[int, Any] = {}
        self.default_failures = True
        self.latency = 0.0
        self.slow_seconds = 2.0
        self.served: dict[int, int] = defaultdict(int)
        self.recent: dict[int, deque[float]] = defaultdict(deque)
        self.outage_code: int | None = None
        self.outage_after = 0

    def configure(self, settings: dict[str, Any]) -> None:
        with self.lock:
            if settings.get("reset"):
                self.reset()
            if "answers" in settings:
                self.answers.update({int(k): v for k, v in settings["answers"].items()})
            if "levels" in settings:
                self.levels.update({int(k): int(v) for k, v in settings["levels"].items()})
            if "behaviours" in settings:
                self.behaviours.update({int(k): str(v) for k, v in settings["behaviours"].items()})
            for name in ("latency", "slow_seconds"):
                if name in settings:
                    setattr(self, name, float(settings[name]))
            if "default_failures" in settings:
                self.default_failures = bool(settings["default_failures"])
            if "outage" in settings:
                outage = settings["outage"] or {}
                self.outage_code = int(outage["code"]) if "code" in outage else None
                self.outage_after = int(outage.get("after", 0))

    def behaviour(self, index: int) -> str:
        if index in self.behaviours:
            return self.behaviours[index]
        if self.default_failures and index % 40 == 7:
            return "error:2"
        if self.default_failures and index % 50 == 13:
            return "error:18"
        return "ok"

    def handle(self, request: Request) -> Response:
        response = self._answer(request)
        response.delay += self.latency
        return response

    def _answer(self, request: Request) -> Response:
        if request.path.rstrip("/") != "/user" and not request.path.startswith("/user/"):
            return Response.json(error_body(3))
        with self.lock:
            if self.outage_code is not None:
                if self.outage_after <= 0:
                    return Response.json(error_body(self.outage_code))
                self.outage_after -= 1
        key = request.query.get("key", "")
        if not key:
            return Response.json(error_body(1))
        index = index_of_key(key)
        if index is None:
            return Response.json(error_body(2))
        selections = set(filter(None, request.query.get("selections", "").split(",")))
        if selections - {"basic", "profile"}:
            return Response.json(error_body(4))
        with self.lock:
            self.served[index] += 1
            served = self.served[index]
            behaviour = self.behaviour(index)
            now = time.monotonic()
            window = self.recent[index]
            while window and window[0] <= now - 60:
                window.popleft()
            if len(window) >= PER_KEY_LIMIT:
                return Response.json(error_body(5))
            window.append(now)
        if index in self.answers:
            return Response.json(self.answers[index])
        kind, _, rest = behaviour.partition(":")
        if kind == "error":
            code, _, times = rest.partition(":")
            if not times or served <= int(times):
                return Response.json(error_body(int(code)))
        elif kind == "http":
            return Response.json({"message": "injected"}, status=int(rest or 500))
        elif kind == "malformed":
            return Response(
                200, b'{"level": 3, "gender": "Ma', {"Content-Type": "application/json"}
            )
        elif kind == "invalid":
            body = profile_at(index)
            del body["player_id"]
            return Response.json(body)
        body = profile_at(index)
        body["level"] = self.levels.get(index, body["level"])
        response = Response.json(body)
        if kind == "slow":
            response.delay = self.slow_seconds
        return response


def providers(scale: float) -> list[Provider]:
    return [TornProvider()]


def environment(server_url: str) -> dict[str, str]:
    return {"TORN_API_BASE_URL": server_url + PREFIX, "ENCRYPTION_KEY": DEMO_ENCRYPTION_KEY}


def encrypt_like_node(plaintext: str, hex_key: str, iv: bytes) -> str:
    """`iv:authTag:ciphertext` in hex with a given IV, so seeded rows are deterministic."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    sealed = AESGCM(bytes.fromhex(hex_key)).encrypt(iv, plaintext.encode(), None)
    return f"{iv.hex()}:{sealed[-16:].hex()}:{sealed[:-16].hex()}"


def stored_key_at(index: int, hex_key: str = DEMO_ENCRYPTION_KEY, *, tamper: bool = False) -> str:
    """User `index`'s key as the app stores it; IVs alternate 12 and 16 bytes as Node apps do."""
    iv = hashlib.sha256(f"iv-{index}".encode()).digest()[: 12 if index % 2 == 0 else 16]
    value = encrypt_like_node(api_key_at(index), hex_key, iv)
    if tamper:
        iv_hex, tag, ciphertext = value.split(":")
        value = f"{iv_hex}:{tag[:-2]}{(int(tag[-2:], 16) ^ 1):02x}:{ciphertext}"
    return value


USER_KEYS_DDL = """
CREATE SCHEMA IF NOT EXISTS torn;
CREATE TABLE IF NOT EXISTS torn.user_keys (
    id uuid PRIMARY KEY,
    user_id varchar NOT NULL,
    api_key text NOT NULL,
    created_at timestamp DEFAULT CURRENT_TIMESTAMP
);
"""


def insert_user_keys(
    database_url: str,
    indexes: Iterable[int],
    *,
    hex_key: str = DEMO_ENCRYPTION_KEY,
    tampered: Iterable[int] = (),
) -> int:
    """Create the app's `torn.user_keys` if needed and add these users' keys (idempotent)."""
    import psycopg

    broken = set(tampered)
    rows = [
        (
            str(uuid.uuid5(_NAMESPACE, f"key-{i}")),
            user_id_at(i),
            stored_key_at(i, hex_key, tamper=i in broken),
        )
        for i in indexes
    ]
    with psycopg.connect(database_url) as conn:
        conn.execute(USER_KEYS_DDL)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO torn.user_keys (id, user_id, api_key) VALUES (%s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING",
                rows,
            )
    return len(rows)


def seed_app_tables(scale: float) -> None:
    """The app's user keys for `USERS_PER_SCALE * scale` users; every 40th one tampered."""
    from sync_assets.core.postgres import database_url_for

    count = max(10, round(USERS_PER_SCALE * scale))
    insert_user_keys(
        database_url_for("TORN_DATABASE_URL"),
        range(count),
        tampered=[i for i in range(count) if i % 40 == 31],
    )
