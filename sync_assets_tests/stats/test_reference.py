"""The SQL against a plain-Python reading of the issue's definitions, on the sandbox's generated
club (ties, draws, ringers, several seasons): every row of every table must agree."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from itertools import groupby

import psycopg
import pytest

from sync_assets.sandbox.club import seed_club
from sync_assets_tests.conftest import create_database
from sync_assets_tests.stats.conftest import query, refresh_all

SCALE = 0.3  # 60 players, 5 seasons of 27 matches, 1,350 player-match rows


@pytest.fixture(scope="module")
def generated(server_url: str) -> Iterator[str]:
    url = create_database(server_url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", url)
        with psycopg.connect(url) as conn:
            seed_club(conn, SCALE)
        refresh_all()
        yield url


def load(url: str) -> dict:
    with psycopg.connect(url) as conn:
        players = {r[0]: r[1:] for r in conn.execute("SELECT * FROM players")}
        seasons = {r[0]: r[2:] for r in conn.execute("SELECT * FROM seasons")}
        matches = {r[0]: r[1:] for r in conn.execute("SELECT * FROM matches")}
        rows = conn.execute(
            "SELECT match_id, player_id, team, goals FROM player_matches"
        ).fetchall()
    history = []  # (date, match, season, player, team, goals, result, points, margin)
    for match_id, player, team, goals in rows:
        day, season, a, b = matches[match_id]
        own, other = (a, b) if team == "A" else (b, a)
        result = "W" if own > other else "D" if own == other else "L"
        points = {"W": 3, "D": 1, "L": 0}[result]
        history.append((day, match_id, season, player, team, goals, result, points, abs(a - b)))
    history.sort()
    return {"players": players, "seasons": seasons, "matches": matches, "history": history}


def per_player(history: list[tuple]) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = defaultdict(list)
    for row in history:  # already in (date, match) order
        out[row[3]].append(row)
    return out


def record(rows: list[tuple]) -> tuple:
    results = [r[6] for r in rows]
    return (
        len(rows),
        results.count("W"),
        results.count("D"),
        results.count("L"),
        sum(r[5] for r in rows),
        sum(r[7] for r in rows),
    )


def longest(results: list[str], ok: set[str]) -> int:
    best = run = 0
    for result in results:
        run = run + 1 if result in ok else 0
        best = max(best, run)
    return best


def dense_top3(values: dict[int, float]) -> list[tuple]:
    distinct = sorted(set(values.values()), reverse=True)[:3]
    return [(distinct.index(v) + 1, p, v) for p, v in values.items() if v in distinct]


def test_every_table_matches_the_definitions(generated: str) -> None:
    club = load(generated)
    history, seasons = club["history"], club["seasons"]
    players = per_player(history)

    season_rows = defaultdict(list)
    half_rows = defaultdict(list)
    for row in history:
        start, end = seasons[row[2]]
        half = 1 if row[0] <= start + (end - start) / 2 else 2
        season_rows[(row[2], row[3])].append(row)
        half_rows[(row[2], half, row[3])].append(row)
    assert set(query(generated, "SELECT * FROM season_stats")) == {
        (*key, *record(rows)) for key, rows in season_rows.items()
    }
    assert set(query(generated, "SELECT * FROM half_season_stats")) == {
        (*key, *record(rows)) for key, rows in half_rows.items()
    }

    career = {p: record(rows) for p, rows in players.items()}
    assert set(query(generated, "SELECT * FROM all_time_stats")) == {
        (p, *c, c[1] / c[0]) for p, c in career.items()
    }

    fame = set()
    for category, index in (("most_games", 0), ("most_goals", 4), ("most_wins", 1),
                            ("most_points", 5)):  # fmt: skip
        fame |= {(category, *t) for t in dense_top3({p: c[index] for p, c in career.items()})}
    eligible = {p: c[1] / c[0] for p, c in career.items() if c[0] >= 20}
    fame |= {("best_win_pct", *t) for t in dense_top3(eligible)}
    assert {f[0] for f in fame} == {"most_games", "most_goals", "most_wins", "most_points",
                                    "best_win_pct"} and len(fame) >= 15  # fmt: skip
    assert (
        set(query(generated, "SELECT category, rank, player_id, value FROM hall_of_fame")) == fame
    )

    recent = set()
    for p, rows in players.items():
        last = rows[-5:][::-1]
        recent.add((p, "".join(r[6] for r in last), sum(r[5] for r in last),
                    sum(r[7] for r in last), rows[-1][0]))  # fmt: skip
    assert set(query(generated, "SELECT * FROM recent_performance")) == recent

    honours = set()
    for season in seasons:
        table = {p: record(r) for (s, p), r in season_rows.items() if s == season}
        for kind, index in (("champion", 5), ("top_scorer", 4)):
            best = max((c[index] for c in table.values()), default=0)
            honours |= {(kind, season, p, None, best) for p, c in table.items()
                        if best > 0 and c[index] == best}  # fmt: skip
    margins = {r[1]: r[8] for r in history}
    best = max(margins.values())
    honours |= {("biggest_win", None, None, m, best) for m, v in margins.items() if v == best}
    top = max(r[5] for r in history)
    honours |= {("most_goals_in_match", None, r[3], r[1], top) for r in history if r[5] == top}
    streaks = {p: longest([r[6] for r in rows], {"W"}) for p, rows in players.items()}
    top = max(streaks.values())
    honours |= {("longest_win_streak", None, p, None, top) for p, v in streaks.items() if v == top}
    assert set(query(generated, "SELECT * FROM season_honours_and_records")) == honours
    assert len(honours) > 2 * len(seasons) + 3  # ties: some record or honour is shared

    names = {p: v[0] for p, v in club["players"].items()}
    report = set()
    for match_id, group in groupby(sorted(history, key=lambda r: r[1]), key=lambda r: r[1]):
        rows = sorted(group, key=lambda r: (-r[5], names[r[3]], r[3]))
        day, season, a, b = club["matches"][match_id]
        scorers = [(r[3], names[r[3]], r[5]) for r in rows if r[5] > 0]
        report.add((match_id, day, season, a, b,
                    tuple(names[r[3]] for r in rows if r[4] == "A"),
                    tuple(names[r[3]] for r in rows if r[4] == "B"), tuple(scorers)))  # fmt: skip
    got = {
        (
            *r[:5],
            tuple(r[5]),
            tuple(r[6]),
            tuple((s["player_id"], s["player"], s["goals"]) for s in r[7]),
        )  # fmt: skip
        for r in query(generated, "SELECT * FROM match_report")
    }
    assert got == report

    bests = set()
    for p, rows in players.items():
        results = [r[6] for r in rows]
        season_points = [record(r)[5] for (s, q), r in season_rows.items() if q == p]
        bests.add((p, max(r[5] for r in rows), longest(results, {"W"}),
                   longest(results, {"W", "D"}), max(season_points)))  # fmt: skip
    assert set(query(generated, "SELECT * FROM personal_bests")) == bests

    ratings, rated = elo(history)
    assert {p: (round(r, 9), n) for p, r, n in query(generated, "SELECT * FROM power_ratings")} == {
        p: (round(ratings[p], 9), rated[p]) for p in rated
    }

    profiles = set()
    for p, (name, ringer, retired) in club["players"].items():
        rows = players.get(p, [])
        c = career.get(p)
        streak = None
        if rows:
            results = [r[6] for r in rows][::-1]
            run = next((i for i, r in enumerate(results) if r != results[0]), len(results))
            streak = f"{results[0]}{run}"
        profiles.add((p, name, ringer, retired, c[0] if c else 0, c[4] if c else 0,
                      c[5] if c else 0, c[1] / c[0] if c else None,
                      len({r[2] for r in rows}), streak, round(ratings.get(p, 1000.0), 9)))  # fmt: skip
    got = {
        (*r[:10], round(r[10], 9)) for r in query(generated, "SELECT * FROM player_profile_stats")
    }
    assert got == profiles

    race = set()
    for (season, p), rows in season_rows.items():
        total = 0
        for r in rows:
            total += r[7]
            race.add((season, p, r[1], r[0], total))
    assert set(query(generated, "SELECT * FROM season_race_data")) == race


def elo(history: list[tuple]) -> tuple[dict[int, float], dict[int, int]]:
    ratings: dict[int, float] = defaultdict(lambda: 1000.0)
    rated: dict[int, int] = defaultdict(int)
    for _, group in groupby(history, key=lambda r: (r[0], r[1])):
        rows = sorted(group, key=lambda r: r[3])
        side_a = [r for r in rows if r[4] == "A"]
        side_b = [r for r in rows if r[4] == "B"]
        mean_a = sum(ratings[r[3]] for r in side_a) / len(side_a)
        mean_b = sum(ratings[r[3]] for r in side_b) / len(side_b)
        expected_a = 1 / (1 + 10 ** ((mean_b - mean_a) / 400))
        actual_a = {"W": 1.0, "D": 0.5, "L": 0.0}[side_a[0][6]]
        delta = 20 * (actual_a - expected_a)
        for r in side_a:
            ratings[r[3]] += delta
            rated[r[3]] += 1
        for r in side_b:
            ratings[r[3]] -= delta
            rated[r[3]] += 1
    return dict(ratings), dict(rated)
