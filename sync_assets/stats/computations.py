"""The eleven aggregates as set-based SQL, and the atomic replacement of a stats table.

Every refresh runs in one transaction: the club's valid results are gathered once into the
temp table `club_results` (one row per player per valid match, with the player's result, points
and position in his own history), each aggregate is computed from it into a temp table, and the
stats table is brought to exactly those rows by deleting the rows that went and inserting the
rows that came (readers keep seeing the old contents until the commit and never wait; rows that
did not change are not rewritten, so a re-run with nothing new writes nothing).

A match is left out whole when its rows contradict each other: a score that is missing or
negative, a player with negative or missing goals or a team other than A/B, a player listed
twice (on both teams), or a side with no players. Player rows for a match or a player that does
not exist are left out. The club-table asset checks (`checks.py`) report the same cases.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql

from sync_assets.core.postgres import PostgresResource


class ClubTablesMissingError(RuntimeError):
    """The app's tables are not where STATS_APP_SCHEMA says they are."""


CLUB_TABLES = ("players", "seasons", "matches", "player_matches")

BAD_MATCHES = """
SELECT m.match_id FROM {app}.matches m
 WHERE m.team_a_score IS NULL OR m.team_b_score IS NULL
    OR m.team_a_score < 0 OR m.team_b_score < 0 OR m.match_date IS NULL
UNION
SELECT pm.match_id FROM {app}.player_matches pm
 GROUP BY pm.match_id
HAVING bool_or(pm.goals IS NULL OR pm.goals < 0 OR pm.team IS NULL OR pm.team NOT IN ('A', 'B'))
    {duplicates}
    OR count(*) FILTER (WHERE pm.team = 'A') = 0
    OR count(*) FILTER (WHERE pm.team = 'B') = 0
"""

DUPLICATE_PLAYERS = "OR count(*) <> count(DISTINCT pm.player_id)"

# One sort of every row by the player's own history (match_date, match_id) gives `seq` (his
# position in it) and, from one running sum packing his wins so far into the low 20 bits and his
# draws into the bits above (a player has fewer than a million matches), `run` and
# `losses_so_far`. `run` numbers his streaks of equal results: seq minus how many of this row's
# result he had so far is constant along a streak, so (player_id, result, run) is one streak;
# `losses_so_far` is constant along an unbeaten run.
CLUB_RESULTS = """
CREATE TEMP TABLE club_results AS
WITH bad AS ({bad}),
rows AS (
    SELECT pm.match_id, m.match_date, m.season_id, pm.player_id, p.idx, pm.team, pm.goals,
           CASE pm.team WHEN 'A' THEN m.team_a_score ELSE m.team_b_score END AS goals_for,
           CASE pm.team WHEN 'A' THEN m.team_b_score ELSE m.team_a_score END AS goals_against
      FROM {app}.player_matches pm
      JOIN {app}.matches m ON m.match_id = pm.match_id
      -- idx: the player's number (1, 2, ...), where Elo keeps his rating in an array
      JOIN (SELECT player_id, row_number() OVER (ORDER BY player_id) AS idx
              FROM {app}.players) p ON p.player_id = pm.player_id
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
               sum(CASE result WHEN 'W' THEN 1 WHEN 'D' THEN 1048576 ELSE 0 END) OVER history
                   AS counts
          FROM results
        WINDOW history AS (PARTITION BY player_id ORDER BY match_date, match_id
                           ROWS UNBOUNDED PRECEDING)
      ) counted
  ) split
"""

# Each player's record per season half (one pass over the results, shared by the seven tables
# that aggregate records): `in_season` is false for matches whose season has no row (they count
# in all-time tables only), and then `half` is null.
CLUB_TOTALS = """
CREATE TEMP TABLE club_totals AS
SELECT r.season_id, s.season_id IS NOT NULL AS in_season,
       (CASE WHEN s.season_id IS NULL THEN NULL
             WHEN r.match_date <= s.start_date + (s.end_date - s.start_date) / 2 THEN 1
             ELSE 2 END)::smallint AS half,
       r.player_id, {record_counts}, max(r.goals) AS most_goals
  FROM club_results r LEFT JOIN {app}.seasons s ON s.season_id = r.season_id
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


def fragments(app_schema: str) -> dict[str, sql.Composable]:
    """The pieces the queries share, and the app's schema as a quoted identifier."""
    return {
        "app": sql.Identifier(app_schema),
        "record_counts": sql.SQL(RECORD_COUNTS),  # type: ignore[arg-type]
        "summed_counts": sql.SQL(SUMMED_COUNTS),  # type: ignore[arg-type]
        "win_streaks": sql.SQL(streaks("result = 'W'", "run")),  # type: ignore[arg-type]
        "unbeaten_streaks": sql.SQL(streaks("result <> 'L'", "losses_so_far")),  # type: ignore[arg-type]
    }


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
        """SELECT r.match_id, r.match_date, r.season_id,
                  max(r.goals_for) FILTER (WHERE r.team = 'A'),
                  max(r.goals_for) FILTER (WHERE r.team = 'B'),
                  array_agg(p.name ORDER BY r.goals DESC, p.name, p.player_id)
                      FILTER (WHERE r.team = 'A'),
                  array_agg(p.name ORDER BY r.goals DESC, p.name, p.player_id)
                      FILTER (WHERE r.team = 'B'),
                  -- one jsonb conversion per match (not per scorer): an array of `scorer`s
                  coalesce(to_jsonb(array_agg(ROW(r.player_id, p.name, r.goals)::scorer
                                              ORDER BY r.goals DESC, p.name, p.player_id)
                                    FILTER (WHERE r.goals > 0)), '[]'::jsonb)
             FROM club_results r JOIN {app}.players p ON p.player_id = r.player_id
            GROUP BY r.match_id, r.match_date, r.season_id""",
        key=("match_id",),
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
              FROM {app}.players p
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
             FROM club_results r JOIN {app}.seasons s ON s.season_id = r.season_id""",
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
    """Create the stats tables and the Elo function (idempotent)."""
    db.apply_ddl(resources.files("sync_assets.stats").joinpath("schema.sql").read_text())


def check_club_tables(conn: psycopg.Connection, app_schema: str) -> None:
    """Fail with one line naming the missing club tables and where they were looked for."""
    found = {
        row[0]
        for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (app_schema,),
        )
    }
    missing = [name for name in CLUB_TABLES if name not in found]
    if missing:
        raise ClubTablesMissingError(
            f"the club's tables {', '.join(missing)} are missing in schema {app_schema!r}: "
            "set STATS_APP_SCHEMA to the schema holding the app's tables"
        )


def has_match_player_key(conn: psycopg.Connection, app_schema: str) -> bool:
    """Whether player_matches has a unique index on exactly (match_id, player_id)."""
    row = conn.execute(
        """
        SELECT EXISTS (
            SELECT 1 FROM pg_index i
              JOIN pg_class c ON c.oid = i.indrelid
              JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = %s AND c.relname = 'player_matches' AND i.indisunique
               AND i.indnatts = 2 AND i.indpred IS NULL
               AND (SELECT array_agg(a.attname::text ORDER BY a.attname)
                      FROM pg_attribute a
                     WHERE a.attrelid = c.oid AND a.attnum = ANY(i.indkey))
                   = ARRAY['match_id', 'player_id'])
        """,
        (app_schema,),
    ).fetchone()
    return bool(row and row[0])


def tune_session(conn: psycopg.Connection) -> None:
    """Settings for a connection that refreshes stats tables (its own; closed afterwards)."""
    # Sorts and hashes of a million rows stay in memory; JIT costs more than it saves here.
    with conn.transaction():
        conn.execute("SET work_mem = '256MB'")
        conn.execute("SET jit = off")
    try:
        # Temp tables live in local buffers: at 200x club_results is ~100 MB, so room for it
        # and a table being rebuilt (settable only before the session's first temp table).
        with conn.transaction():
            conn.execute("SET temp_buffers = '512MB'")
    except psycopg.errors.InvalidParameterValue:
        pass


def prepare_club_results(conn: psycopg.Connection, app_schema: str) -> int:
    """Gather the valid results into the session's temp table `club_results` (replacing an
    earlier one, and the Elo ratings computed from it); return its row count."""
    check_club_tables(conn, app_schema)
    conn.execute("DROP TABLE IF EXISTS club_results, club_totals, club_elo")
    app = sql.Identifier(app_schema)
    # A player listed twice in a match (on both teams) is impossible when the app's table keys
    # (match_id, player_id); only without that key is the costlier distinct count needed.
    duplicates = sql.SQL("" if has_match_player_key(conn, app_schema) else DUPLICATE_PLAYERS)
    bad = sql.SQL(BAD_MATCHES).format(app=app, duplicates=duplicates)  # type: ignore[arg-type]
    rows = conn.execute(sql.SQL(CLUB_RESULTS).format(bad=bad, app=app)).rowcount  # type: ignore[arg-type]
    conn.execute("ANALYZE club_results")
    return rows


def replace_table(conn: psycopg.Connection, spec: TableSpec, app_schema: str) -> RefreshCounts:
    """Compute `spec` from `club_results` and replace its table with the result.

    Runs inside the caller's transaction, after `prepare_club_results`.
    """
    started = time.monotonic()
    _derive(conn, spec, app_schema)
    target = sql.Identifier(spec.name)
    # One writer per table at a time (a UI run and a queue run, or two deployments); readers
    # are not blocked by this lock mode.
    conn.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(target))
    fresh = sql.Identifier(f"_new_{spec.name}")
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in spec.columns)
    query = sql.SQL(spec.query).format(**fragments(app_schema))  # type: ignore[arg-type]
    empty = conn.execute(sql.SQL("SELECT NOT EXISTS (SELECT FROM {})").format(target)).fetchone()
    if empty and empty[0]:
        # A first refresh (or after a truncate): nothing to compare, so no staging table.
        added = conn.execute(
            sql.SQL("INSERT INTO {t} ({c}) SELECT * FROM ({query}) q").format(
                t=target, c=columns, query=query
            )
        ).rowcount
        return RefreshCounts(spec.name, added, added, 0, time.monotonic() - started)
    conn.execute(
        sql.SQL("CREATE TEMP TABLE {n} ON COMMIT DROP AS SELECT * FROM ({query}) q ({c})").format(
            n=fresh, query=query, c=columns
        )
    )
    removed, added = _apply_difference(conn, spec, target, fresh)
    rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(fresh)).fetchone()[0]  # type: ignore[index]
    conn.execute(sql.SQL("DROP TABLE {}").format(fresh))
    return RefreshCounts(spec.name, rows, added, removed, time.monotonic() - started)


def _derive(conn: psycopg.Connection, spec: TableSpec, app_schema: str) -> None:
    """Create the session's shared intermediate tables this table reads, once per snapshot."""
    if "club_totals" in spec.query and not _exists(conn, "club_totals"):
        totals = sql.SQL(CLUB_TOTALS).format(**fragments(app_schema))  # type: ignore[arg-type]
        conn.execute(totals)
        conn.execute("ANALYZE club_totals")
    if "club_elo" in spec.query:
        # Elo is sequential and the costliest step: once per snapshot, shared by two tables.
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS club_elo AS SELECT * FROM elo_ratings()")


def _exists(conn: psycopg.Connection, temp_table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"pg_temp.{temp_table}",)).fetchone()
    return bool(row and row[0])


def _apply_difference(
    conn: psycopg.Connection, spec: TableSpec, target: sql.Identifier, fresh: sql.Identifier
) -> tuple[int, int]:
    """Make the target hold exactly the new rows: delete the rows that went or changed, then
    insert the rows that are not there. Rows that did not change are not touched.

    Rows are matched on the table's key and compared on the other columns; a table without a
    key compares whole rows (only the small honours table).
    """
    if spec.key:
        return _apply_keyed_difference(conn, spec, target, fresh)
    # Whole rows may hold nulls, so rows match with IS NOT DISTINCT FROM on every column.
    same = sql.SQL(" AND ").join(
        sql.SQL("{} IS NOT DISTINCT FROM {}").format(sql.Identifier("n", c), sql.Identifier("t", c))
        for c in spec.columns
    )
    removed = conn.execute(
        sql.SQL("DELETE FROM {t} t WHERE NOT EXISTS (SELECT 1 FROM {n} n WHERE {same})").format(
            t=target, n=fresh, same=same
        )
    ).rowcount
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in spec.columns)
    added = conn.execute(
        sql.SQL(
            "INSERT INTO {t} ({c}) SELECT {nc} FROM {n} n"
            " WHERE NOT EXISTS (SELECT 1 FROM {t} t WHERE {same})"
        ).format(
            t=target,
            c=columns,
            nc=sql.SQL(", ").join(sql.Identifier("n", c) for c in spec.columns),
            n=fresh,
            same=same,
        )
    ).rowcount
    return removed, added


def _apply_keyed_difference(
    conn: psycopg.Connection, spec: TableSpec, target: sql.Identifier, fresh: sql.Identifier
) -> tuple[int, int]:
    """One full join of the new rows with the current ones on the key finds every row that
    went, came or changed (usually few); then only those are deleted and inserted."""
    changes = sql.Identifier(f"_changes_{spec.name}")
    rest = [c for c in spec.columns if c not in spec.key]

    def cols(alias: str, names: list[str] | tuple[str, ...]) -> sql.Composable:
        return sql.SQL(", ").join(sql.Identifier(alias, c) for c in names)

    def old(name: str) -> sql.Identifier:
        return sql.Identifier(f"_old_{name}")

    matched = sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(sql.Identifier("n", c), sql.Identifier("t", c)) for c in spec.key
    )
    differs = sql.SQL("{} IS NULL OR {} IS NULL").format(
        sql.Identifier("n", spec.key[0]), sql.Identifier("t", spec.key[0])
    )
    if rest:
        differs = sql.SQL("{} OR ROW({}) IS DISTINCT FROM ROW({})").format(
            differs, cols("n", rest), cols("t", rest)
        )
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE {changes} ON COMMIT DROP AS SELECT {old}, {new}"
            " FROM {n} n FULL JOIN {t} t ON {matched} WHERE {differs}"
        ).format(
            changes=changes,
            old=sql.SQL(", ").join(
                sql.SQL("{} AS {}").format(sql.Identifier("t", c), old(c)) for c in spec.key
            ),
            new=cols("n", spec.columns),
            n=fresh,
            t=target,
            matched=matched,
            differs=differs,
        )
    )
    removed = conn.execute(
        sql.SQL("DELETE FROM {t} t USING {changes} c WHERE {same}").format(
            t=target,
            changes=changes,
            same=sql.SQL(" AND ").join(
                sql.SQL("{} = {}").format(sql.Identifier("c", f"_old_{c}"), sql.Identifier("t", c))
                for c in spec.key
            ),
        )
    ).rowcount
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in spec.columns)
    added = conn.execute(
        sql.SQL("INSERT INTO {t} ({c}) SELECT {c} FROM {changes} WHERE {k} IS NOT NULL").format(
            t=target, c=columns, changes=changes, k=sql.Identifier(spec.key[0])
        )
    ).rowcount
    conn.execute(sql.SQL("DROP TABLE {}").format(changes))
    return removed, added


def refresh_tables(
    conn: psycopg.Connection, names: list[str] | tuple[str, ...], app_schema: str
) -> list[RefreshCounts]:
    """Refresh several tables in one transaction on one connection (the tests' reference)."""
    tune_session(conn)
    with conn.transaction():
        prepare_club_results(conn, app_schema)
        return [replace_table(conn, TABLES_BY_NAME[name], app_schema) for name in names]
