"""Stand-in for the 5-a-side club app: its tables (seeded deterministically) and its cache endpoint.

- `seed_app_tables(scale)` creates and fills the app-owned tables `players`, `seasons`,
  `matches`, `player_matches` and `background_job_status` (schema `STATS_APP_SCHEMA`, default
  `public`) in the database the stats domain uses. 1x is 200 players, 10 seasons of 50 matches,
  10 players a match; the club grows as sqrt(scale) seasons of sqrt(scale) x 50 matches, so
  200x is about 100,000 matches and 1,000,000 player-match rows. It has ringers, retired
  players, draws and lopsided scores. Seeding is idempotent (existing rows are kept).
- `POST /club-app/api/internal/cache/invalidate` is the app's revalidation endpoint, as the
  worker's `cache.ts` calls it: `Authorization: Bearer <INTERNAL_API_KEY>`, body
  `{"tags": [...], "source": ..., "requestId": ...}`, answer
  `{"success": true, "invalidated_tags": [...], "failed_tags": []}`; 401 on a wrong key.
  `configure({"refuse": n})` answers the next n calls with HTTP 200 and `success: false`.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from sync_assets.sandbox.server import Provider, Request, Response

PREFIX = "/club-app"
REVALIDATE_PATH = "/api/internal/cache/invalidate"
SANDBOX_INTERNAL_KEY = "sandbox-club-internal-key-7f3a"
QUEUE_NAMESPACE = uuid.UUID("6f1c7a52-3f0e-4f7e-9d7e-2b9c0e5a1d10")

APP_DDL = """
CREATE TABLE IF NOT EXISTS {schema}.players (
    player_id integer PRIMARY KEY,
    name text NOT NULL,
    is_ringer boolean NOT NULL DEFAULT false,
    is_retired boolean NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS {schema}.seasons (
    season_id integer PRIMARY KEY,
    name text NOT NULL,
    start_date date NOT NULL,
    end_date date NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.matches (
    match_id integer PRIMARY KEY,
    match_date date NOT NULL,
    season_id integer,
    team_a_score integer,
    team_b_score integer
);
CREATE TABLE IF NOT EXISTS {schema}.player_matches (
    match_id integer NOT NULL,
    player_id integer NOT NULL,
    team text NOT NULL,
    goals integer NOT NULL DEFAULT 0,
    PRIMARY KEY (match_id, player_id)
);
CREATE TABLE IF NOT EXISTS {schema}.background_job_status (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    job_type text NOT NULL DEFAULT 'stats_update',
    job_payload jsonb,
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'processing', 'completed', 'failed')),
    priority integer NOT NULL DEFAULT 0,
    retry_count integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    completed_at timestamptz,
    error_message text,
    results jsonb
);
CREATE INDEX IF NOT EXISTS background_job_status_queue_idx
    ON {schema}.background_job_status (status, priority DESC, created_at);
"""

FIRST_NAMES = ["Alex", "Sam", "Jamie", "Chris", "Robbie", "Dev", "Marek", "Tomás", "Kofi", "Liam"]
LAST_NAMES = ["Smith", "O'Neill", "Nowak", "Okafor", "García", "Brown", "Khan", "Murphy", "Ng"]


def app_schema() -> str:
    """The schema holding the app's tables (`STATS_APP_SCHEMA`, default `public`)."""
    from sync_assets.core.settings import optional_setting

    return optional_setting("STATS_APP_SCHEMA", "public") or "public"


def create_app_tables(conn: psycopg.Connection, schema: str = "public") -> None:
    """Create the app-owned tables if they are missing (the app's own migrations, in short)."""
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    conn.execute(sql.SQL(APP_DDL).format(schema=sql.Identifier(schema)))  # type: ignore[arg-type]


@dataclass(frozen=True)
class ClubShape:
    players: int
    seasons: int
    matches_per_season: int
    side: int = 5

    @classmethod
    def at(cls, scale: float) -> ClubShape:
        root = math.sqrt(max(scale, 0.01))
        return cls(
            players=max(24, round(200 * scale)),
            seasons=max(1, round(10 * root)),
            matches_per_season=max(4, round(50 * root)),
        )


def club_rows(scale: float) -> dict[str, Iterator[tuple]]:
    """The club's rows at `scale`, generated deterministically (same scale, same rows)."""
    shape = ClubShape.at(scale)
    return {
        "players": _players(shape),
        "seasons": _seasons(shape),
        "matches+player_matches": _matches(shape, scale),  # ("m" | "pm", row) pairs
    }


def _players(shape: ClubShape) -> Iterator[tuple]:
    for pid in range(1, shape.players + 1):
        name = f"{FIRST_NAMES[pid % len(FIRST_NAMES)]} {LAST_NAMES[pid % len(LAST_NAMES)]} {pid}"
        yield pid, name, pid % 10 == 7, pid % 9 == 4


def _season_dates(shape: ClubShape, index: int) -> tuple[dt.date, dt.date]:
    start = dt.date(2000, 1, 3) + dt.timedelta(days=364 * index)
    return start, start + dt.timedelta(days=363)


def _seasons(shape: ClubShape) -> Iterator[tuple]:
    for index in range(shape.seasons):
        start, end = _season_dates(shape, index)
        yield index + 1, f"Season {start.year}/{(start.year + 1) % 100:02d}", start, end


def _matches(shape: ClubShape, scale: float) -> Iterator[tuple]:
    """("m", match row) and ("pm", player_match row) tuples, interleaved."""
    rng = random.Random(f"club-{scale}")
    regulars = [pid for pid in range(1, shape.players + 1) if pid % 10 != 7]
    ringers = [pid for pid in range(1, shape.players + 1) if pid % 10 == 7]
    pool = min(len(regulars), max(2 * shape.side + 4, round(40 * math.sqrt(scale))))
    step = max(1, len(regulars) // max(1, shape.seasons))
    match_id = 0
    for season in range(shape.seasons):
        start, end = _season_dates(shape, season)
        span = (end - start).days
        squad = [regulars[(season * step + i) % len(regulars)] for i in range(pool)]
        for number in range(shape.matches_per_season):
            match_id += 1
            day = start + dt.timedelta(days=number * span // shape.matches_per_season)
            picked = rng.sample(squad, 2 * shape.side)
            if ringers and rng.random() < 0.15:
                ringer = rng.choice(ringers)
                if ringer not in picked:
                    picked[rng.randrange(len(picked))] = ringer
            lopsided = rng.random() < 0.08
            scores = [0, 0]
            rows = []
            for slot, pid in enumerate(picked):
                team = "A" if slot < shape.side else "B"
                strong = lopsided and team == "A"
                goals = _goals(rng, strong)
                scores[0 if team == "A" else 1] += goals
                rows.append((match_id, pid, team, goals))
            if rng.random() < 0.1:  # an own goal: a goal nobody on the team scored
                scores[rng.randrange(2)] += 1
            if rng.random() < 0.12:  # level it: the club sees plenty of draws
                scores[1] = scores[0] if scores[0] >= scores[1] else scores[1]
                scores[0] = scores[1]
            yield "m", (match_id, day, season + 1, scores[0], scores[1])
            for row in rows:
                yield "pm", row


def _goals(rng: random.Random, strong: bool) -> int:
    """Mostly 0-2 goals, with a long thin tail (hat-tricks are rare, double figures rarer)."""
    goals = 0
    keep_scoring = 0.62 if strong else 0.45
    while rng.random() < keep_scoring and goals < 15:
        goals += 1
        keep_scoring *= 0.9
    return goals


def queue_rows() -> list[tuple]:
    """A short history of the app's queue: two finished jobs and one waiting."""
    now = dt.datetime(2026, 1, 10, 20, 0, tzinfo=dt.UTC)
    rows = []
    for n, (status, trigger, priority) in enumerate(
        [("completed", "cron", 1), ("failed", "admin", 1), ("queued", "post-match", 2)]
    ):
        created = now + dt.timedelta(hours=n)
        done = status != "queued"
        rows.append(
            (
                uuid.uuid5(QUEUE_NAMESPACE, f"job-{n}"),
                "stats_update",
                psycopg.types.json.Jsonb({"triggeredBy": trigger, "requestId": f"seed-{n}"}),
                status,
                priority,
                0,
                created,
                created + dt.timedelta(seconds=2) if done else None,
                created + dt.timedelta(seconds=40) if done else None,
                "statement timeout" if status == "failed" else None,
            )
        )
    return rows


def seed_club(conn: psycopg.Connection, scale: float, schema: str = "public") -> dict[str, int]:
    """Create the app tables and insert the club at `scale` (rows already there are kept)."""
    create_app_tables(conn, schema)
    counts: dict[str, int] = {}
    generated = club_rows(scale)
    _copy_new(conn, schema, "players", ["player_id", "name", "is_ringer", "is_retired"],
              ["player_id"], generated["players"], counts)  # fmt: skip
    _copy_new(conn, schema, "seasons", ["season_id", "name", "start_date", "end_date"],
              ["season_id"], generated["seasons"], counts)  # fmt: skip
    # The generator is deterministic: walking it twice (matches, then their players) keeps
    # memory flat at any scale.
    shape, rng_scale = ClubShape.at(scale), scale
    _copy_new(conn, schema, "matches",
              ["match_id", "match_date", "season_id", "team_a_score", "team_b_score"],
              ["match_id"], (r for k, r in _matches(shape, rng_scale) if k == "m"), counts)  # fmt: skip
    _copy_new(conn, schema, "player_matches", ["match_id", "player_id", "team", "goals"],
              ["match_id", "player_id"],
              (r for k, r in _matches(shape, rng_scale) if k == "pm"), counts)  # fmt: skip
    _copy_new(conn, schema, "background_job_status",
              ["id", "job_type", "job_payload", "status", "priority", "retry_count",
               "created_at", "started_at", "completed_at", "error_message"],
              ["id"], iter(queue_rows()), counts)  # fmt: skip
    return counts


def _copy_new(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    columns: list[str],
    keys: list[str],
    rows: Iterator[tuple],
    counts: dict[str, int],
) -> None:
    staging = sql.Identifier(f"_seed_{table}")
    target = sql.Identifier(schema, table)
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    conn.execute(
        sql.SQL("CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(
            staging, target
        )
    )
    with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(staging, cols)) as copy:
        for row in rows:
            copy.write_row(row)
    inserted = conn.execute(
        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT ({}) DO NOTHING").format(
            target, cols, cols, staging, sql.SQL(", ").join(map(sql.Identifier, keys))
        )
    ).rowcount
    counts[table] = inserted


def seed_app_tables(scale: float) -> None:
    """Fill the club app's tables in the stats database (`STATS_DATABASE_URL` or the default)."""
    from sync_assets.core.postgres import database_url_for

    with psycopg.connect(database_url_for("STATS_DATABASE_URL")) as conn:
        with conn.transaction():
            seed_club(conn, scale, app_schema())


class ClubAppProvider(Provider):
    """The club app's internal cache-revalidation endpoint."""

    prefix = PREFIX

    def __init__(self, key: str = SANDBOX_INTERNAL_KEY) -> None:
        self.key = key
        self.refuse = 0
        self.revalidated: list[str] = []
        self.lock = threading.Lock()

    def configure(self, settings: dict[str, Any]) -> None:
        with self.lock:
            if settings.get("reset"):
                self.refuse = 0
                self.revalidated = []
            if "refuse" in settings:
                self.refuse = int(settings["refuse"])
            if "key" in settings:
                self.key = str(settings["key"])

    def handle(self, request: Request) -> Response:
        if request.path.rstrip("/") != REVALIDATE_PATH or request.method != "POST":
            return Response.json({"error": "Not found"}, status=404)
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return Response.json({"error": "Unauthorized"}, status=401)
        try:
            body = request.json()
            tags = [str(t) for t in body["tags"]]
        except (ValueError, KeyError, TypeError):
            return Response.json({"error": "tags (string[]) is required"}, status=400)
        with self.lock:
            if self.refuse > 0:
                self.refuse -= 1
                return Response.json(
                    {
                        "success": False,
                        "invalidated_tags": [],
                        "failed_tags": tags,
                        "error": "revalidateTag threw",
                    }  # fmt: skip
                )
            self.revalidated.extend(tags)
        return Response.json({"success": True, "invalidated_tags": tags, "failed_tags": []})


def providers(scale: float) -> list[Provider]:
    return [ClubAppProvider()]


def environment(server_url: str) -> dict[str, str]:
    return {"NEXT_PUBLIC_APP_URL": server_url + PREFIX, "INTERNAL_API_KEY": SANDBOX_INTERNAL_KEY}
