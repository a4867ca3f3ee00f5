"""Stats fixtures: the club app stand-in on loopback, a fresh database with the app's tables,
a small club whose every aggregate was worked out by hand, and helpers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import dagster as dg
import psycopg
import pytest

from sync_assets.sandbox import club as club_sandbox
from sync_assets.sandbox.server import SandboxServer
from sync_assets.stats import computations
from sync_assets.stats import defs as stats_defs
from sync_assets.stats.computations import RefreshCounts
from sync_assets.stats.refresh import refresh_tables
from sync_assets.stats.resources import ClubAppResource, StatsDatabase
from sync_assets_tests.conftest import point_at, serve_providers

# Revalidation retries that do not make a test wait: the behaviour is the same, the clock not.
QUICK_APP = ClubAppResource(backoff_seconds=0.01, timeout_seconds=5)

NAMES = {1: "Ann", 2: "Bob", 3: "Cat", 4: "Dan", 5: "Eve", 6: "Fay", 7: "Gus"}
RINGERS = {5}
RETIRED = {6}
SEASONS = [
    (1, "Winter", dt.date(2024, 1, 1), dt.date(2024, 1, 31)),  # midpoint Jan 16
    (2, "Spring", dt.date(2024, 2, 1), dt.date(2024, 2, 29)),  # midpoint Feb 15
]
# match_id: (date, season, score A, score B, [(player, team, goals), ...])
MATCHES: dict[int, tuple[dt.date, int, int | None, int | None, list[tuple[int, str, int]]]] = {
    1: (dt.date(2024, 1, 5), 1, 3, 1, [(1, "A", 2), (2, "A", 1), (3, "B", 0), (4, "B", 1)]),
    2: (dt.date(2024, 1, 16), 1, 1, 1, [(1, "A", 0), (3, "A", 1), (2, "B", 1), (4, "B", 0)]),
    3: (dt.date(2024, 1, 17), 1, 1, 4, [(1, "A", 1), (4, "A", 0), (2, "B", 2), (5, "B", 2)]),
    4: (dt.date(2024, 2, 3), 2, 3, 0, [(1, "A", 3), (2, "A", 0), (3, "B", 0), (6, "B", 0)]),
    5: (dt.date(2024, 2, 20), 2, 0, 1, [(1, "A", 0), (2, "A", 0), (3, "B", 1), (4, "B", 0)]),
    6: (dt.date(2024, 2, 20), 2, 2, 0, [(1, "A", 1), (3, "A", 1), (2, "B", 0), (4, "B", 0)]),
    # Rows that contradict each other: left out of every aggregate.
    7: (dt.date(2024, 2, 25), 2, 4, 0, [(1, "A", -1), (2, "A", 5), (3, "B", 0), (4, "B", 0)]),
    8: (dt.date(2024, 2, 26), 2, 2, 1, []),
    9: (dt.date(2024, 2, 27), 2, 1, 0, [(1, "A", 1)]),
}
ORPHAN_ROWS = [(99, 1, "A", 3), (6, 42, "A", 0)]  # a match and a player that do not exist


@pytest.fixture(scope="module")
def club_server() -> Iterator[SandboxServer]:
    yield from serve_providers(club_sandbox)


@pytest.fixture
def club(
    club_server: SandboxServer, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SandboxServer]:
    """The app stand-in with settings pointing at it, and the hand-worked club in a fresh DB."""
    point_at(club_server, club_sandbox, monkeypatch)
    monkeypatch.delenv("STATS_APP_SCHEMA", raising=False)
    monkeypatch.delenv("STATS_QUEUE_MAX_ROWS_PER_RUN", raising=False)
    club_server.providers[club_sandbox.PREFIX].configure(
        {"reset": True, "key": club_sandbox.SANDBOX_INTERNAL_KEY}
    )
    build_club(database_url)
    yield club_server
    club_server.faults.clear()


def build_club(url: str, matches: dict | None = None) -> None:
    with psycopg.connect(url) as conn:
        club_sandbox.create_app_tables(conn)
        conn.execute("TRUNCATE players, seasons, matches, player_matches")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO players VALUES (%s, %s, %s, %s)",
                [(pid, name, pid in RINGERS, pid in RETIRED) for pid, name in NAMES.items()],
            )
            cur.executemany("INSERT INTO seasons VALUES (%s, %s, %s, %s)", SEASONS)
            add_matches(cur, MATCHES if matches is None else matches)
            if matches is None:
                cur.executemany("INSERT INTO player_matches VALUES (%s, %s, %s, %s)", ORPHAN_ROWS)


def add_matches(cur: psycopg.Cursor, matches: dict) -> None:
    for match_id, (day, season, a, b, rows) in matches.items():
        cur.execute(
            "INSERT INTO matches VALUES (%s, %s, %s, %s, %s)", (match_id, day, season, a, b)
        )
        cur.executemany(
            "INSERT INTO player_matches VALUES (%s, %s, %s, %s)",
            [(match_id, pid, team, goals) for pid, team, goals in rows],
        )


def resources(**overrides: Any) -> dict[str, Any]:
    bound: dict[str, Any] = dict(stats_defs.resources or {})
    bound["stats_app"] = QUICK_APP
    bound.update(overrides)
    return bound


def stats_db() -> StatsDatabase:
    return StatsDatabase(schema_name="stats", url_setting="STATS_DATABASE_URL")


def refresh_all() -> dict[str, RefreshCounts]:
    """Create the stats tables if needed and refresh all eleven; fail on any table's error."""
    db = stats_db()
    computations.apply_schema(db)
    outcomes = list(refresh_tables(db, [t.name for t in computations.TABLES]))
    assert [(o.name, o.error) for o in outcomes if o.error] == []
    return {o.name: o.counts for o in outcomes if o.counts}


def query(url: str, text: str, params: Any = None) -> list[tuple]:
    with psycopg.connect(url) as conn:
        conn.execute("SET search_path TO stats, public")
        return conn.execute(text, params).fetchall()


def metadata_of(result: dg.ExecuteInJobResult, asset: str) -> dict[str, Any]:
    [materialization] = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(asset)
    ]
    return {k: v.value for k, v in materialization.metadata.items()}


def revalidated_tags(server: SandboxServer) -> list[str]:
    import json

    tags: list[str] = []
    for request in server.recorded(club_sandbox.PREFIX):
        if request["status"] == 200:
            tags.extend(json.loads(request["body"])["tags"])
    return tags
