"""Every stats table against values worked out by hand for the small club in conftest.py.

Valid results, in each player's order (match_date, match_id); matches 7-9 and the rows for
match 99 / player 42 contradict themselves and are left out:
    Ann: M1 W(2) M2 D(0) M3 L(1) M4 W(3) M5 L(0) M6 W(1)   -> 6 games, 7 goals, 10 points
    Bob: M1 W(1) M2 D(1) M3 W(2) M4 W(0) M5 L(0) M6 L(0)   -> 6 games, 4 goals, 10 points
    Cat: M1 L(0) M2 D(1) M4 L(0) M5 W(1) M6 W(1)           -> 5 games, 3 goals, 7 points
    Dan: M1 L(1) M2 D(0) M3 L(0) M5 W(0) M6 L(0)           -> 5 games, 1 goal, 4 points
    Eve: M3 W(2)   Fay: M4 L(0)   Gus: no games
M5 and M6 share a date: M6 (higher id) is the later one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import psycopg
import pytest

from sync_assets_tests.conftest import create_database
from sync_assets_tests.stats.conftest import MATCHES, add_matches, build_club, query, refresh_all

ANN, BOB, CAT, DAN, EVE, FAY, GUS = range(1, 8)


@pytest.fixture(scope="module")
def refreshed(server_url: str) -> Iterator[str]:
    """The hand-worked club, refreshed once for the read-only tests of this module."""
    url = create_database(server_url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", url)
        build_club(url)
        refresh_all()
        yield url


def test_season_and_half_season_stats(refreshed: str) -> None:
    rows = query(refreshed, "SELECT * FROM season_stats ORDER BY season_id, player_id")
    # season, player, games, wins, draws, losses, goals, points
    assert rows == [
        (1, ANN, 3, 1, 1, 1, 3, 4),
        (1, BOB, 3, 2, 1, 0, 4, 7),
        (1, CAT, 2, 0, 1, 1, 1, 1),
        (1, DAN, 3, 0, 1, 2, 1, 1),
        (1, EVE, 1, 1, 0, 0, 2, 3),
        (2, ANN, 3, 2, 0, 1, 4, 6),
        (2, BOB, 3, 1, 0, 2, 0, 3),
        (2, CAT, 3, 2, 0, 1, 2, 6),
        (2, DAN, 2, 1, 0, 1, 0, 3),
        (2, FAY, 1, 0, 0, 1, 0, 0),
    ]
    halves = query(refreshed, "SELECT * FROM half_season_stats ORDER BY 1, 2, 3")
    # Season 1's midpoint is Jan 16: M1 and M2 (on the midpoint) are half 1, M3 half 2.
    # Season 2's midpoint is Feb 15: M4 is half 1, M5 and M6 half 2.
    assert halves == [
        (1, 1, ANN, 2, 1, 1, 0, 2, 4),
        (1, 1, BOB, 2, 1, 1, 0, 2, 4),
        (1, 1, CAT, 2, 0, 1, 1, 1, 1),
        (1, 1, DAN, 2, 0, 1, 1, 1, 1),
        (1, 2, ANN, 1, 0, 0, 1, 1, 0),
        (1, 2, BOB, 1, 1, 0, 0, 2, 3),
        (1, 2, DAN, 1, 0, 0, 1, 0, 0),
        (1, 2, EVE, 1, 1, 0, 0, 2, 3),
        (2, 1, ANN, 1, 1, 0, 0, 3, 3),
        (2, 1, BOB, 1, 1, 0, 0, 0, 3),
        (2, 1, CAT, 1, 0, 0, 1, 0, 0),
        (2, 1, FAY, 1, 0, 0, 1, 0, 0),
        (2, 2, ANN, 2, 1, 0, 1, 1, 3),
        (2, 2, BOB, 2, 0, 0, 2, 0, 0),
        (2, 2, CAT, 2, 2, 0, 0, 2, 6),
        (2, 2, DAN, 2, 1, 0, 1, 0, 3),
    ]


def test_all_time_stats_and_hall_of_fame(refreshed: str) -> None:
    assert query(refreshed, "SELECT * FROM all_time_stats ORDER BY player_id") == [
        (ANN, 6, 3, 1, 2, 7, 10, 0.5),
        (BOB, 6, 3, 1, 2, 4, 10, 0.5),
        (CAT, 5, 2, 1, 2, 3, 7, 0.4),
        (DAN, 5, 1, 1, 3, 1, 4, 0.2),
        (EVE, 1, 1, 0, 0, 2, 3, 1.0),
        (FAY, 1, 0, 0, 1, 0, 0, 0.0),
    ]
    fame = query(refreshed, "SELECT category, rank, player_id, value FROM hall_of_fame")
    by_category: dict[str, list[tuple]] = {}
    for category, rank, player, value in sorted(fame):
        by_category.setdefault(category, []).append((rank, player, value))
    # Dense ranks: tied players share a rank and the next value takes the next rank.
    assert by_category == {
        "most_games": [
            (1, ANN, 6),
            (1, BOB, 6),
            (2, CAT, 5),
            (2, DAN, 5),
            (3, EVE, 1),
            (3, FAY, 1),
        ],
        "most_goals": [(1, ANN, 7), (2, BOB, 4), (3, CAT, 3)],
        "most_wins": [(1, ANN, 3), (1, BOB, 3), (2, CAT, 2), (3, DAN, 1), (3, EVE, 1)],
        "most_points": [(1, ANN, 10), (1, BOB, 10), (2, CAT, 7), (3, DAN, 4)],
    }  # nobody has the 20 games best_win_pct needs


def test_best_win_pct_needs_twenty_games_and_shares_ties(database_url: str) -> None:
    """X beats Y 15-5 in 20 games, Z beats W likewise; V wins all 19 of his against U."""
    matches = {}
    day = dt.date(2024, 1, 1)
    pairs = [(1, 2, 20, 15), (3, 4, 20, 15), (5, 6, 19, 19)]
    match_id = 0
    for winner, loser, games, wins in pairs:
        for n in range(games):
            match_id += 1
            a, b = (1, 0) if n < wins else (0, 1)
            rows = [(winner, "A", a), (loser, "B", b)]
            matches[match_id] = (day + dt.timedelta(days=match_id), 1, a, b, rows)
    build_club(database_url, matches)
    refresh_all()
    rows = query(
        database_url,
        "SELECT rank, player_id, value FROM hall_of_fame WHERE category = 'best_win_pct'"
        " ORDER BY rank, player_id",
    )
    assert rows == [(1, 1, 0.75), (1, 3, 0.75), (2, 2, 0.25), (2, 4, 0.25)]


def test_recent_performance(refreshed: str) -> None:
    assert query(refreshed, "SELECT * FROM recent_performance ORDER BY player_id") == [
        (ANN, "WLWLD", 5, 7, dt.date(2024, 2, 20)),
        (BOB, "LLWWD", 3, 7, dt.date(2024, 2, 20)),
        (CAT, "WWLDL", 3, 7, dt.date(2024, 2, 20)),
        (DAN, "LWLDL", 1, 4, dt.date(2024, 2, 20)),
        (EVE, "W", 2, 3, dt.date(2024, 1, 17)),
        (FAY, "L", 0, 0, dt.date(2024, 2, 3)),
    ]


def test_season_honours_and_records(refreshed: str) -> None:
    rows = query(
        refreshed,
        "SELECT kind, season_id, player_id, match_id, value FROM season_honours_and_records"
        " ORDER BY kind, season_id NULLS FIRST, player_id NULLS FIRST, match_id",
    )
    assert rows == [
        ("biggest_win", None, None, 3, 3),  # 1-4
        ("biggest_win", None, None, 4, 3),  # 3-0: a tie gives two rows
        ("champion", 1, BOB, None, 7),
        ("champion", 2, ANN, None, 6),  # Ann and Cat tie on 6 points
        ("champion", 2, CAT, None, 6),
        ("longest_win_streak", None, BOB, None, 2),  # M3, M4
        ("longest_win_streak", None, CAT, None, 2),  # M5, M6
        ("most_goals_in_match", None, ANN, 4, 3),
        ("top_scorer", 1, BOB, None, 4),
        ("top_scorer", 2, ANN, None, 4),
    ]


def test_match_report(refreshed: str) -> None:
    rows = query(refreshed, "SELECT * FROM match_report ORDER BY match_id")
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5, 6]  # 7, 8, 9 contradict themselves
    first = rows[0]  # line-ups: scorers first (most goals), then by name
    assert first[:7] == (1, dt.date(2024, 1, 5), 1, 3, 1, ["Ann", "Bob"], ["Dan", "Cat"])
    assert first[7] == [
        {"player_id": ANN, "player": "Ann", "goals": 2},
        {"player_id": BOB, "player": "Bob", "goals": 1},
        {"player_id": DAN, "player": "Dan", "goals": 1},
    ]
    sixth = rows[5]  # player 42 does not exist: left out of the line-up
    assert sixth[3:7] == (2, 0, ["Ann", "Cat"], ["Bob", "Dan"])


def test_personal_bests(refreshed: str) -> None:
    assert query(refreshed, "SELECT * FROM personal_bests ORDER BY player_id") == [
        (ANN, 3, 1, 2, 6),  # unbeaten: W D
        (BOB, 2, 2, 4, 7),  # unbeaten: W D W W
        (CAT, 1, 2, 2, 6),
        (DAN, 1, 1, 1, 3),
        (EVE, 2, 1, 1, 3),
        (FAY, 0, 0, 0, 0),
    ]


def test_player_profile_stats(refreshed: str) -> None:
    rows = query(
        refreshed,
        "SELECT player_id, name, is_ringer, is_retired, games, goals, points, win_pct,"
        " seasons_played, current_streak FROM player_profile_stats ORDER BY player_id",
    )
    assert rows == [
        (ANN, "Ann", False, False, 6, 7, 10, 0.5, 2, "W1"),
        (BOB, "Bob", False, False, 6, 4, 10, 0.5, 2, "L2"),
        (CAT, "Cat", False, False, 5, 3, 7, 0.4, 2, "W2"),
        (DAN, "Dan", False, False, 5, 1, 4, 0.2, 2, "L1"),
        (EVE, "Eve", True, False, 1, 2, 3, 1.0, 1, "W1"),
        (FAY, "Fay", False, True, 1, 0, 0, 0.0, 1, "L1"),
        (GUS, "Gus", False, False, 0, 0, 0, None, 0, None),
    ]
    ratings = dict(query(refreshed, "SELECT player_id, rating FROM power_ratings"))
    profile = dict(query(refreshed, "SELECT player_id, power_rating FROM player_profile_stats"))
    assert profile == {**ratings, GUS: 1000.0}


def test_season_race_data(refreshed: str) -> None:
    rows = query(
        refreshed,
        "SELECT season_id, player_id, match_id, match_date, cumulative_points"
        " FROM season_race_data WHERE player_id IN (%s, %s) ORDER BY 1, 2, 3",
        (BOB, CAT),
    )
    assert rows == [
        (1, BOB, 1, dt.date(2024, 1, 5), 3),
        (1, BOB, 2, dt.date(2024, 1, 16), 4),
        (1, BOB, 3, dt.date(2024, 1, 17), 7),
        (1, CAT, 1, dt.date(2024, 1, 5), 0),
        (1, CAT, 2, dt.date(2024, 1, 16), 1),
        (2, BOB, 4, dt.date(2024, 2, 3), 3),
        (2, BOB, 5, dt.date(2024, 2, 20), 3),
        (2, BOB, 6, dt.date(2024, 2, 20), 3),
        (2, CAT, 4, dt.date(2024, 2, 3), 0),
        (2, CAT, 5, dt.date(2024, 2, 20), 3),
        (2, CAT, 6, dt.date(2024, 2, 20), 6),
    ]
    assert query(refreshed, "SELECT count(*) FROM season_race_data") == [(24,)]


def test_elo_after_three_matches(club, database_url: str) -> None:
    """M1: 1000 v 1000, A wins: +10 / -10. M2: Ann+Cat (1000) v Bob+Dan (1000), a draw: 0.
    M3: Ann+Dan (1010+990)/2 = 1000 v Bob+Eve (1010+1000)/2 = 1005; A expected
    1/(1+10^(5/400)) = 0.4928049; B wins, so A's players lose 20 x 0.4928049 = 9.856098."""
    build_club(database_url, {k: v for k, v in MATCHES.items() if k <= 3})
    refresh_all()
    ratings = {p: (r, n) for p, r, n in query(database_url, "SELECT * FROM power_ratings")}
    expected = {
        ANN: (1000.143902, 3),
        BOB: (1019.856098, 3),
        CAT: (990.0, 2),
        DAN: (980.143902, 3),
        EVE: (1009.856098, 1),
    }
    assert ratings.keys() == expected.keys()
    for player, (rating, games) in expected.items():
        assert ratings[player][0] == pytest.approx(rating, abs=1e-5)
        assert ratings[player][1] == games


def test_a_rerun_writes_nothing_and_new_matches_rewrite(club, database_url: str) -> None:
    first = refresh_all()
    assert all(c.written for c in first.values())
    again = refresh_all()
    assert not any(c.written for c in again.values())  # same input, same rows: untouched
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        add_matches(cur, {10: (dt.date(2024, 2, 28), 2, 0, 2, [(5, "A", 0), (7, "B", 2)])})
    third = refresh_all()
    # Eve's row changed (one out, one in) and Gus's is new; nobody else's row is rewritten.
    assert (third["all_time_stats"].added, third["all_time_stats"].removed) == (2, 1)
    assert third["all_time_stats"].rows == 7
    assert query(database_url, "SELECT games, goals FROM all_time_stats WHERE player_id = 7") == [
        (1, 2)
    ]
