"""The eleven aggregates, computed in DuckDB from one copy of the club's tables.

A refresh copies the four club tables out of PostgreSQL in one snapshot (`load_club`), gathers
the valid results once into `club_results` (one row per player per valid match, with the
player's result, points and position in his own history), derives the shared `club_totals`
(records per season half) and `club_elo` (ratings), and computes each table from them
(`compute_table`). `refresh.py` then brings each PostgreSQL table to exactly those rows.

A match is left out whole when its rows contradict each other: a score that is missing or
negative, a player with negative or missing goals or a team other than A/B, a player listed
twice (on both teams), or a side with no players. Player rows for a match or a player that does
not exist are left out. The club-table asset checks (`club_checks.py`) report the same cases.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import psycopg2.extensions
from psycopg2 import sql

from sync_assets.core.analytics import count_rows, ident
from sync_assets.core.pg_bulk import copy_out, read_pg_csv
from sync_assets.core.postgres import PostgresResource
from sync_assets.stats.elo import Match, elo_ratings

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa


class ClubTablesMissingError(RuntimeError):
    """The app's tables are not where STATS_APP_SCHEMA says they are."""


# The club's columns the aggregates read, with their DuckDB types.
CLUB_COLUMNS: dict[str, dict[str, str]] = {
    "players": {
        "player_id": "BIGINT",
        "name": "VARCHAR",
        "is_ringer": "BOOLEAN",
        "is_retired": "BOOLEAN",
    },
    "seasons": {"season_id": "BIGINT", "start_date": "DATE", "end_date": "DATE"},
    "matches": {
        "match_id": "BIGINT",
        "match_date": "DATE",
        "season_id": "BIGINT",
        "team_a_score": "INTEGER",
        "team_b_score": "INTEGER",
    },
    "player_matches": {
        "match_id": "BIGINT",
        "player_id": "BIGINT",
        "team": "VARCHAR",
        "goals": "INTEGER",
    },
}
CLUB_TABLES = tuple(CLUB_COLUMNS)

BAD_MATCHES = """
SELECT m.match_id FROM matches m
 WHERE m.team_a_score IS NULL OR m.team_b_score IS NULL
    OR m.team_a_score < 0 OR m.team_b_score < 0 OR m.match_date IS NULL
UNION
SELECT pm.match_id FROM player_matches pm
 GROUP BY pm.match_id
HAVING bool_or(pm.goals IS NULL OR pm.goals < 0 OR pm.team IS NULL OR pm.team NOT IN ('A', 'B'))
    OR count(*) <> count(DISTINCT pm.player_id)
    OR count(*) FILTER (WHERE pm.team = 'A') = 0
    OR count(*) FILTER (WHERE pm.team = 'B') = 0
"""

# One sort of every row by the player's own history (match_date, match_id) gives `seq` (his
# position in it) and, from one running sum packing his wins so far into the low 20 bits and his
# draws into the bits above (a player has fewer than a million matches), `run` and
# `losses_so_far`. `run` numbers his streaks of equal results: seq minus how many of this row's
# result he had so far is constant along a streak, so (player_id, result, run) is one streak;
# `losses_so_far` is constant along an unbeaten run.
CLUB_RESULTS = """
CREATE TABLE club_results AS
WITH bad AS (BAD_MATCHES),
rows AS (
    SELECT pm.match_id, m.match_date, m.season_id, pm.player_id, p.idx, pm.team, pm.goals,
           CASE pm.team WHEN 'A' THEN m.team_a_score ELSE m.team_b_score END AS goals_for,
           CASE pm.team WHEN 'A' THEN m.team_b_score ELSE m.team_a_score END AS goals_against
      FROM player_matches pm
      JOIN matches m ON m.match_id = pm.match_id
      -- idx: the player's number (1, 2, ...), where Elo keeps his rating in an array
      JOIN (SELECT player_id, row_number() OVER (ORDER BY player_id) AS idx
              FROM players) p ON p.player_id = pm.player_id
     WHERE NOT EXISTS (SELECT 1 FROM bad WHERE bad.match_id = pm.match_id)
),
results AS (
    SELECT rows.*,
           CASE sign(goals_for - goals_against) WHEN 1 THEN 'W' WHEN 0 THEN 'D' ELSE 'L' END
               AS result,
           CASE sign(goals_for - goals_against) WHEN 1 THEN 3 WHEN 0 THEN 1 ELSE 0 END AS points
      FROM rows
)
SELECT match_id, match_date, season_id, player_id, idx, team, goals, goals_for, goals_against,
       result, points, seq,
       seq - CASE result WHEN 'W' THEN wins WHEN 'D' THEN draws ELSE seq - wins - draws END
           AS run,
       seq - wins - draws AS losses_so_far
  FROM (
    SELECT counted.*, counts & 1048575 AS wins, counts >> 20 AS draws
      FROM (
        SELECT results.*, row_number() OVER history AS seq,
               (sum(CASE result WHEN 'W' THEN 1 WHEN 'D' THEN 1048576 ELSE 0 END)
                   OVER history)::BIGINT AS counts
          FROM results
        WINDOW history AS (PARTITION BY player_id ORDER BY match_date, match_id
                           ROWS UNBOUNDED PRECEDING)
      ) counted
  ) split
""".replace("BAD_MATCHES", BAD_MATCHES)

# Each player's record per season half (one pass over the results, shared by the seven tables
# that aggregate records): `in_season` is false for matches whose season has no row (they count
# in all-time tables only), and then `half` is null.
CLUB_TOTALS = """
CREATE TABLE club_totals AS
SELECT r.season_id, s.season_id IS NOT NULL AS in_season,
       (CASE WHEN s.season_id IS NULL THEN NULL
             WHEN r.match_date <= s.start_date + ((s.end_date - s.start_date) // 2)::INTEGER
             THEN 1
             ELSE 2 END)::SMALLINT AS half,
       r.player_id, {record_counts}, max(r.goals) AS most_goals
  FROM club_results r LEFT JOIN seasons s ON s.season_id = r.season_id
 GROUP BY r.season_id, s.season_id, half, r.player_id
"""

SUMMED_COUNTS = """
    sum(t.games)::integer AS games,
    sum(t.wins)::integer AS wins,
    sum(t.draws)::integer AS draws,
    sum(t.losses)::integer AS losses,
    sum(t.goals)::integer AS goals,
    sum(t.points)::integer AS points"""

RECORD_COUNTS = """
    count(*)::integer AS games,
    (count(*) FILTER (WHERE r.result = 'W'))::integer AS wins,
    (count(*) FILTER (WHERE r.result = 'D'))::integer AS draws,
    (count(*) FILTER (WHERE r.result = 'L'))::integer AS losses,
    sum(r.goals)::integer AS goals,
    sum(r.points)::integer AS points"""

# Each player's longest streak: the streaks are groups of the snapshot's keys (no sort).
STREAKS = """
SELECT player_id, max(len)::integer AS longest FROM (
    SELECT player_id, count(*) AS len FROM club_results
     WHERE {condition} GROUP BY player_id, {streak}
) streaks GROUP BY player_id
"""


def streaks(condition: str, streak: str) -> str:
    return STREAKS.replace("{condition}", condition).replace("{streak}", streak)


FRAGMENTS = {
    "{record_counts}": RECORD_COUNTS,
    "{summed_counts}": SUMMED_COUNTS,
    "{win_streaks}": streaks("result = 'W'", "run"),
    "{unbeaten_streaks}": streaks("result <> 'L'", "losses_so_far"),
}


def render(query: str) -> str:
    """A query with the shared fragments in place."""
    for name, fragment in FRAGMENTS.items():
        query = query.replace(name, fragment)
    return query


@dataclass(frozen=True)
class TableSpec:
    """One aggregate: its table, the seed worker's function and cache tag, and its query."""

    name: str
    seed_function: str
    cache_tag: str
    description: str
    columns: tuple[str, ...]
    query: str
    key: tuple[str, ...] = ()  # the table's primary key; () compares whole rows
    digest: str | None = None  # a column holding each row's digest (see replace_rows)


TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "season_stats",
        "update_half_and_full_season_stats",
        "season_stats",
        "Each player's games, wins, draws, losses, goals and points per season.",
        ("season_id", "player_id", "games", "wins", "draws", "losses", "goals", "points"),
        """SELECT t.season_id, t.player_id, {summed_counts}
              FROM club_totals t WHERE t.in_season
             GROUP BY t.season_id, t.player_id""",
        key=("season_id", "player_id"),
    ),
    TableSpec(
        "half_season_stats",
        "update_half_and_full_season_stats",
        "half_season_stats",
        "Season stats split at the midpoint of each season's start and end dates.",
        ("season_id", "half", "player_id", "games", "wins", "draws", "losses", "goals", "points"),
        """SELECT t.season_id, t.half, t.player_id,
                  t.games, t.wins, t.draws, t.losses, t.goals, t.points
             FROM club_totals t WHERE t.in_season""",
        key=("season_id", "half", "player_id"),
    ),
    TableSpec(
        "all_time_stats",
        "update_aggregated_all_time_stats",
        "all_time_stats",
        "Each player's career games, results, goals, points and win share.",
        ("player_id", "games", "wins", "draws", "losses", "goals", "points", "win_pct"),
        """SELECT t.player_id, {summed_counts},
                   sum(t.wins)::double precision / sum(t.games)
              FROM club_totals t GROUP BY t.player_id""",
        key=("player_id",),
    ),
    TableSpec(
        "hall_of_fame",
        "update_aggregated_hall_of_fame",
        "hall_of_fame",
        "The top three (dense ranks, ties shared) of five career categories.",
        ("category", "rank", "player_id", "value"),
        """WITH t AS (SELECT t.player_id, {summed_counts} FROM club_totals t
                        GROUP BY t.player_id),
            c AS (
                SELECT 'most_games' AS category, player_id, games::double precision AS value
                  FROM t
                UNION ALL SELECT 'most_goals', player_id, goals FROM t
                UNION ALL SELECT 'most_wins', player_id, wins FROM t
                UNION ALL SELECT 'most_points', player_id, points FROM t
                UNION ALL SELECT 'best_win_pct', player_id, wins::double precision / games
                  FROM t WHERE games >= 20
            ),
            ranked AS (
                SELECT category, (dense_rank() OVER (PARTITION BY category
                                                    ORDER BY value DESC))::integer AS rank,
                       player_id, value FROM c
            )
            SELECT category, rank, player_id, value FROM ranked WHERE rank <= 3""",
        key=("category", "player_id"),
    ),
    TableSpec(
        "recent_performance",
        "update_aggregated_recent_performance",
        "recent_performance",
        "Each player's last five results (most recent first), goals and points in them.",
        ("player_id", "last_5", "goals_last_5", "points_last_5", "last_match_date"),
        """SELECT r.player_id, string_agg(r.result, '' ORDER BY r.seq DESC),
                  sum(r.goals)::integer, sum(r.points)::integer, max(r.match_date)
             FROM club_results r
             JOIN (SELECT player_id, max(seq) AS games FROM club_results GROUP BY player_id) l
               ON l.player_id = r.player_id AND r.seq > l.games - 5
            GROUP BY r.player_id""",
        key=("player_id",),
    ),
    TableSpec(
        "season_honours_and_records",
        "update_aggregated_season_honours_and_records",
        "honour_roll",
        "Season champions and top scorers, and the club's all-time records.",
        ("kind", "season_id", "player_id", "match_id", "value"),
        """WITH ss AS (
                SELECT t.season_id, t.player_id, sum(t.points) AS points, sum(t.goals) AS goals
                  FROM club_totals t WHERE t.in_season
                 GROUP BY t.season_id, t.player_id
            ),
            champions AS (
                SELECT season_id, player_id, points,
                       rank() OVER (PARTITION BY season_id ORDER BY points DESC) AS rk
                  FROM ss WHERE points > 0
            ),
            scorers AS (
                SELECT season_id, player_id, goals,
                       rank() OVER (PARTITION BY season_id ORDER BY goals DESC) AS rk
                  FROM ss WHERE goals > 0
            ),
            margins AS (
                SELECT DISTINCT match_id, abs(goals_for - goals_against) AS margin
                  FROM club_results
            ),
            streaks AS ({win_streaks})
            SELECT 'champion', season_id, player_id, NULL::integer, points::integer
              FROM champions WHERE rk = 1
            UNION ALL
            SELECT 'top_scorer', season_id, player_id, NULL, goals::integer
              FROM scorers WHERE rk = 1
            UNION ALL
            SELECT 'biggest_win', NULL, NULL, match_id, margin::integer
              FROM margins WHERE margin > 0 AND margin = (SELECT max(margin) FROM margins)
            UNION ALL
            SELECT 'most_goals_in_match', NULL, player_id, match_id, goals
              FROM club_results
             WHERE goals > 0 AND goals = (SELECT max(goals) FROM club_results)
            UNION ALL
            SELECT 'longest_win_streak', NULL, player_id, NULL, longest
              FROM streaks WHERE longest = (SELECT max(longest) FROM streaks)""",
    ),
    TableSpec(
        "match_report",
        "update_aggregated_match_report_cache",
        "match_report",
        "Every valid match: score, both line-ups (scorers first) and the scorers.",
        (
            "match_id",
            "match_date",
            "season_id",
            "team_a_score",
            "team_b_score",
            "team_a",
            "team_b",
            "scorers",
        ),
        # One line-up per match sorted by goals (most first), name, id; split into teams, scorers.
        """SELECT match_id, match_date, season_id, score_a, score_b,
                  list_transform(list_filter(line_up, lambda x: x.team = 'A'),
                                 lambda x: x.player),
                  list_transform(list_filter(line_up, lambda x: x.team = 'B'),
                                 lambda x: x.player),
                  list_transform(list_filter(line_up, lambda x: x.goals > 0),
                                 lambda x: {'player_id': x.player_id, 'player': x.player,
                                            'goals': x.goals})
             FROM (
                SELECT r.match_id, r.match_date, r.season_id,
                       max(r.goals_for) FILTER (WHERE r.team = 'A') AS score_a,
                       max(r.goals_for) FILTER (WHERE r.team = 'B') AS score_b,
                       -- sorting each small list beats an ordered aggregate per match
                       list_sort(list({'rank': -r.goals, 'player': p.name,
                                       'player_id': r.player_id, 'team': r.team,
                                       'goals': r.goals})) AS line_up
                  FROM club_results r JOIN players p ON p.player_id = r.player_id
                 GROUP BY r.match_id, r.match_date, r.season_id
             ) matches""",
        key=("match_id",),
        # Its line-ups and scorers are most of the bytes a refresh would read back to compare.
        digest="row_digest",
    ),
    TableSpec(
        "personal_bests",
        "update_aggregated_personal_bests",
        "personal_bests",
        "Each player's best match, longest win and unbeaten runs and best season.",
        (
            "player_id",
            "most_goals_in_match",
            "longest_win_streak",
            "longest_unbeaten_streak",
            "best_season_points",
        ),
        """WITH career AS (SELECT player_id, max(most_goals)::integer AS most_goals
                              FROM club_totals GROUP BY player_id),
            seasons AS (
                SELECT player_id, max(points)::integer AS best FROM (
                    SELECT t.player_id, sum(t.points) AS points
                      FROM club_totals t WHERE t.in_season
                     GROUP BY t.season_id, t.player_id) t
                 GROUP BY player_id
            ),
            wins AS ({win_streaks}),
            unbeaten AS ({unbeaten_streaks})
            SELECT c.player_id, c.most_goals, coalesce(w.longest, 0),
                   coalesce(u.longest, 0), s.best
              FROM career c
              LEFT JOIN wins w ON w.player_id = c.player_id
              LEFT JOIN unbeaten u ON u.player_id = c.player_id
              LEFT JOIN seasons s ON s.player_id = c.player_id""",
        key=("player_id",),
    ),
    TableSpec(
        "player_profile_stats",
        "update_aggregated_player_profile_stats",
        "player_profile_stats",
        "One profile row per player: career totals, seasons, current streak and Elo rating.",
        (
            "player_id",
            "name",
            "is_ringer",
            "is_retired",
            "games",
            "goals",
            "points",
            "win_pct",
            "seasons_played",
            "current_streak",
            "power_rating",
        ),
        """WITH career AS (
                SELECT t.player_id, sum(t.games)::integer AS games,
                       sum(t.goals)::integer AS goals, sum(t.points)::integer AS points,
                       sum(t.wins)::double precision / sum(t.games) AS win_pct,
                       (count(DISTINCT t.season_id) FILTER (WHERE t.in_season))::integer
                           AS seasons_played
                  FROM club_totals t
                 GROUP BY t.player_id
            ),
            -- the current streak is the streak holding the player's latest result
            latest AS (
                SELECT r.player_id, r.result, r.run
                  FROM club_results r JOIN career c ON c.player_id = r.player_id
                 WHERE r.seq = c.games
            ),
            streak AS (
                SELECT l.player_id, l.result || count(*) AS current_streak
                  FROM latest l
                  JOIN club_results r
                    ON r.player_id = l.player_id AND r.result = l.result AND r.run = l.run
                 GROUP BY l.player_id, l.result
            ),
            elo AS (SELECT * FROM club_elo)
            SELECT p.player_id, p.name, coalesce(p.is_ringer, false),
                   coalesce(p.is_retired, false), coalesce(c.games, 0), coalesce(c.goals, 0),
                   coalesce(c.points, 0), c.win_pct, coalesce(c.seasons_played, 0),
                   st.current_streak, coalesce(e.rating, 1000)
              FROM players p
              LEFT JOIN career c ON c.player_id = p.player_id
              LEFT JOIN streak st ON st.player_id = p.player_id
              LEFT JOIN elo e ON e.player_id = p.player_id""",
        key=("player_id",),
    ),
    TableSpec(
        "season_race_data",
        "update_aggregated_season_race_data",
        "season_race_data",
        "Each player's cumulative points after each of his matches in a season.",
        ("season_id", "player_id", "match_id", "match_date", "cumulative_points"),
        """SELECT r.season_id, r.player_id, r.match_id, r.match_date,
                  (sum(r.points) OVER (PARTITION BY r.season_id, r.player_id ORDER BY r.seq
                                       ROWS UNBOUNDED PRECEDING))::integer
             FROM club_results r JOIN seasons s ON s.season_id = r.season_id""",
        key=("season_id", "player_id", "match_id"),
    ),
    TableSpec(
        "power_ratings",
        "update_power_ratings",
        "player_power_rating",
        "Each player's Elo rating (K = 20, start 1000) over every valid match in order.",
        ("player_id", "rating", "matches_rated"),
        "SELECT player_id, rating, matches_rated FROM club_elo",
        key=("player_id",),
    ),
)

TABLES_BY_NAME = {spec.name: spec for spec in TABLES}


@dataclass(frozen=True)
class RefreshCounts:
    """What one table's refresh did."""

    table: str
    rows: int
    added: int
    removed: int
    seconds: float

    @property
    def written(self) -> bool:
        return bool(self.added or self.removed)

    def as_metadata(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "rows_added": self.added,
            "rows_removed": self.removed,
            "rewritten": self.written,
            "compute_seconds": round(self.seconds, 3),
        }


def apply_schema(db: PostgresResource) -> None:
    """Create the stats tables (idempotent)."""
    db.apply_ddl(resources.files("sync_assets.stats").joinpath("schema.sql").read_text())


def check_club_tables(cur: psycopg.Cursor | psycopg2.extensions.cursor, app_schema: str) -> None:
    """Fail with one line naming the missing club tables and where they were looked for."""
    cur.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
        (app_schema,),
    )
    found = {row[0] for row in cur.fetchall()}
    missing = [name for name in CLUB_TABLES if name not in found]
    if missing:
        raise ClubTablesMissingError(
            f"the club's tables {', '.join(missing)} are missing in schema {app_schema!r}: "
            "set STATS_APP_SCHEMA to the schema holding the app's tables"
        )


def load_club(
    pg: psycopg2.extensions.connection, duck: duckdb.DuckDBPyConnection, app: str, folder: Path
) -> int:
    """Copy the club's tables into DuckDB in one snapshot; return player_matches' row count.

    Raises ClubTablesMissingError, naming them, when the club's tables are not in `app`.
    """
    pg.set_session(isolation_level="REPEATABLE READ", readonly=True)
    try:
        with pg.cursor() as cur:
            check_club_tables(cur, app)
            for table, columns in CLUB_COLUMNS.items():
                path = folder / f"club_{table}.csv"
                copy_out(cur, _club_query(pg, app, table, columns), path)
                duck.execute(
                    f"CREATE OR REPLACE TABLE {table} AS {read_pg_csv(columns)}", [str(path)]
                )
                path.unlink()
    finally:
        pg.rollback()  # the read-only snapshot has nothing to commit
        pg.set_session(isolation_level="DEFAULT", readonly="DEFAULT")
    return count_rows(duck, "player_matches")


def _club_query(
    pg: psycopg2.extensions.connection, app: str, table: str, columns: dict[str, str]
) -> str:
    selected = [
        sql.SQL("{}::int").format(sql.Identifier(name))
        if kind == "BOOLEAN"  # t/f out of PostgreSQL, 1/0 into DuckDB
        else sql.Identifier(name)
        for name, kind in columns.items()
    ]
    return (
        sql.SQL("SELECT {} FROM {}.{}")
        .format(sql.SQL(", ").join(selected), sql.Identifier(app), sql.Identifier(table))
        .as_string(pg)
    )


def build_shared(duck: duckdb.DuckDBPyConnection) -> int:
    """Gather the valid results and the per-half records; return the valid rows' count."""
    duck.execute("DROP TABLE IF EXISTS club_results")
    duck.execute(CLUB_RESULTS)
    duck.execute("DROP TABLE IF EXISTS club_totals")
    duck.execute(render(CLUB_TOTALS))
    duck.execute("DROP TABLE IF EXISTS club_elo")
    return count_rows(duck, "club_results")


def build_elo(duck: duckdb.DuckDBPyConnection) -> None:
    """Rate every valid match in order into `club_elo` (player_id, rating, matches_rated)."""
    players = duck.execute("SELECT coalesce(max(idx), 0) FROM club_results").fetchone()
    # Each match's two sides as player numbers in ascending order, read in Arrow batches: the
    # lists arrive as flat arrays, far cheaper to turn into Python lists than row by row. Arrow
    # batches keep the ORDER BY only where insertion order is preserved, so on its own cursor.
    with closing(duck.cursor()) as ordered:
        ordered.execute("SET SESSION preserve_insertion_order = true")
        sides = ordered.sql(
            """SELECT match_date, match_id,
                      list_sort(list(idx) FILTER (WHERE team = 'A')),
                      list_sort(list(idx) FILTER (WHERE team = 'B')),
                      max(goals_for) FILTER (WHERE team = 'A'),
                      max(goals_for) FILTER (WHERE team = 'B')
                 FROM club_results
                GROUP BY match_date, match_id ORDER BY match_date, match_id"""
        ).to_arrow_reader(50_000)
        ratings = elo_ratings(_matches_in_order(sides), int(players[0]))  # type: ignore[index]
    duck.execute("DROP TABLE IF EXISTS club_elo")
    duck.execute(
        """CREATE TABLE club_elo AS
           WITH rated AS (SELECT unnest(range(1, len($ratings) + 1)) AS idx,
                                 unnest($ratings) AS rating)
           SELECT r.player_id, any_value(e.rating) AS rating,
                  count(*)::INTEGER AS matches_rated
             FROM club_results r JOIN rated e ON e.idx = r.idx
            GROUP BY r.player_id""",
        {"ratings": ratings[1:]},  # player numbers start at 1
    )


def _matches_in_order(batches: pa.RecordBatchReader) -> Iterator[Iterator[Match]]:
    """Each batch's matches as (side A, side B, score A, score B), checking that the batches
    come in match order (Elo depends on it)."""
    last: tuple = ()
    for batch in batches:
        if batch.num_rows == 0:
            continue
        dates, ids = batch.column(0), batch.column(1)
        first = (dates[0].as_py(), ids[0].as_py())
        if last and first <= last:
            raise RuntimeError(f"matches arrived out of order: {first[1]} after {last[1]}")
        last = (dates[-1].as_py(), ids[-1].as_py())
        yield zip(
            _python_lists(batch.column(2)),
            _python_lists(batch.column(3)),
            batch.column(4).to_pylist(),
            batch.column(5).to_pylist(),
            strict=True,
        )


def _python_lists(column: pa.ListArray) -> list[list[int]]:
    """A list column as Python lists, cut from its one flat array by the offsets."""
    flat = column.flatten().to_numpy().tolist()
    bounds = column.offsets.to_numpy().tolist()
    base = bounds[0]  # offsets of a sliced array start past 0; flatten() does not
    return [flat[start - base : end - base] for start, end in itertools.pairwise(bounds)]


def compute_table(duck: duckdb.DuckDBPyConnection, spec: TableSpec) -> str:
    """Compute `spec` into the DuckDB table `new_<name>` (replaced); return that name."""
    if "club_elo" in spec.query and not _has_table(duck, "club_elo"):
        build_elo(duck)
    name = f"new_{spec.name}"
    columns = ", ".join(ident(c) for c in spec.columns)
    duck.execute(f"CREATE OR REPLACE TEMP TABLE {ident(name)} ({columns}) AS {render(spec.query)}")
    return name


def _has_table(duck: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = duck.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main'",
        [name],
    ).fetchone()
    return bool(row and row[0])
