"""Elo ratings over the club's matches in order: a sequential pass, so plain Python."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Match = tuple[Sequence[int], Sequence[int], int, int]  # side A, side B (player numbers), scores


def elo_ratings(batches: Iterable[Iterable[Match]], players: int, k: float = 20) -> list[float]:
    """Every player's rating after the matches, indexed by player number (1..players; [0] unused).

    Everyone starts at 1000. In match order, each side's rating is the mean of its players'
    ratings before the match, expected = 1 / (1 + 10^((other - own) / 400)), actual 1 / 0.5 /
    0, and each player gains k * (actual - expected). Sides are summed in the order given, so
    the same input gives the same floats every time.
    """
    ratings = [1000.0] * (players + 1)
    rating = ratings.__getitem__
    for batch in batches:
        for side_a, side_b, score_a, score_b in batch:
            mean_a = sum(map(rating, side_a)) / len(side_a)
            mean_b = sum(map(rating, side_b)) / len(side_b)
            expected_a = 1 / (1 + 10.0 ** ((mean_b - mean_a) / 400))
            actual_a = 1.0 if score_a > score_b else 0.5 if score_a == score_b else 0.0
            delta = k * (actual_a - expected_a)
            for i in side_a:
                ratings[i] += delta
            for i in side_b:
                ratings[i] -= delta
    return ratings
