"""The club app's tables as external assets, with checks that report contradicting rows.

The aggregates leave such rows out (see `computations.BAD_MATCHES`); these checks say how many
there are and show a sample, so the app's data can be fixed at the source.
"""

from dataclasses import dataclass

import dagster as dg
from psycopg import sql

from sync_assets.core.domain import asset_tags, check_metadata
from sync_assets.stats.computations import CLUB_TABLES, check_club_tables
from sync_assets.stats.resources import StatsDatabase

SAMPLE_SIZE = 5

CLUB_SPECS = [
    dg.AssetSpec(
        dg.AssetKey(["club", table]),
        group_name="stats",
        kinds={"postgres"},
        description=f"The club app's `{table}` table (owned and written by the app).",
        tags=asset_tags(table=f"club.{table}"),
    )
    for table in CLUB_TABLES
]
CLUB_KEYS = [spec.key for spec in CLUB_SPECS]


@dataclass(frozen=True)
class ClubRule:
    table: str
    name: str
    description: str
    offending_rows: str  # a SELECT of the offending rows, `{app}` for the app's schema


RULES = (
    ClubRule(
        "player_matches",
        "player_on_both_teams",
        "No player is listed twice in one match (on both teams).",
        """SELECT match_id, player_id, string_agg(team, ',' ORDER BY team) AS teams
             FROM {app}.player_matches GROUP BY match_id, player_id HAVING count(*) > 1""",
    ),
    ClubRule(
        "player_matches",
        "goals_and_team_valid",
        "Goals are present and not negative; team is A or B.",
        """SELECT match_id, player_id, team, goals FROM {app}.player_matches
            WHERE goals IS NULL OR goals < 0 OR team IS NULL OR team NOT IN ('A', 'B')""",
    ),
    ClubRule(
        "player_matches",
        "rows_reference_known_matches_and_players",
        "Every player_matches row names a match and a player that exist.",
        """SELECT pm.match_id, pm.player_id,
                  (m.match_id IS NULL) AS match_missing, (p.player_id IS NULL) AS player_missing
             FROM {app}.player_matches pm
             LEFT JOIN {app}.matches m ON m.match_id = pm.match_id
             LEFT JOIN {app}.players p ON p.player_id = pm.player_id
            WHERE m.match_id IS NULL OR p.player_id IS NULL""",
    ),
    ClubRule(
        "matches",
        "matches_have_players_on_both_sides",
        "Every match has players on team A and on team B.",
        """SELECT m.match_id, m.match_date,
                  count(pm.player_id) FILTER (WHERE pm.team = 'A') AS team_a_players,
                  count(pm.player_id) FILTER (WHERE pm.team = 'B') AS team_b_players
             FROM {app}.matches m LEFT JOIN {app}.player_matches pm ON pm.match_id = m.match_id
            GROUP BY m.match_id, m.match_date
           HAVING count(pm.player_id) FILTER (WHERE pm.team = 'A') = 0
               OR count(pm.player_id) FILTER (WHERE pm.team = 'B') = 0""",
    ),
    ClubRule(
        "matches",
        "scores_valid",
        "Both scores and the date are present and scores are not negative.",
        """SELECT match_id, match_date, team_a_score, team_b_score FROM {app}.matches
            WHERE team_a_score IS NULL OR team_b_score IS NULL OR match_date IS NULL
               OR team_a_score < 0 OR team_b_score < 0""",
    ),
)


def _build_check(rule: ClubRule) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(["club", rule.table]),
        name=rule.name,
        description=rule.description,
        blocking=False,
        metadata=check_metadata(domain="stats", table=f"club.{rule.table}"),
    )
    def _check(stats_db: StatsDatabase) -> dg.AssetCheckResult:
        app = stats_db.app_schema_name()
        offending = sql.SQL(rule.offending_rows).format(app=sql.Identifier(app))  # type: ignore[arg-type]
        with stats_db.connect() as conn:
            check_club_tables(conn.cursor(), app)
            count = conn.execute(
                sql.SQL("SELECT count(*) FROM ({}) o").format(offending)
            ).fetchone()[0]  # type: ignore[index]
            cursor = conn.execute(
                sql.SQL("SELECT * FROM ({}) o LIMIT {}").format(offending, SAMPLE_SIZE)
            )
            names = [c.name for c in cursor.description or []]
            sample = [
                {
                    k: (v if isinstance(v, int | bool | None) else str(v))
                    for k, v in zip(names, r, strict=True)
                }
                for r in cursor.fetchall()
            ]
        return dg.AssetCheckResult(
            passed=count == 0,
            severity=dg.AssetCheckSeverity.WARN,
            description=None if count == 0 else f"{count} rows left out of the aggregates",
            metadata={"offending_rows": count, "sample": dg.MetadataValue.json(sample)},
        )

    return _check


CLUB_CHECKS = [_build_check(rule) for rule in RULES]
