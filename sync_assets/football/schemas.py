"""Pydantic types for the objects in API-Football answers, validated as they were parsed.

Every type is strict: a value must already be what the column holds (a JSON `null` or `1` where a
boolean belongs is rejected, never turned into `False` or `True` on the way), and one bad value
rejects one row, with the value in the sample. pydantic-core checks a whole chunk of rows in one
call, several times faster than building a DataFrame for pandera, and reads the provider's
objects as they are, without flattening them first.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Annotated, Any, Literal, NotRequired

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints, TypeAdapter, with_config
from typing_extensions import TypedDict

COUNTRY_CODE = re.compile(r"^[A-Z]{2}(-[A-Z]{2,4})?$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
COVERAGE_FIXTURE_FLAGS = ("events", "lineups", "statistics_fixtures", "statistics_players")
COVERAGE_SEASON_FLAGS = (
    "standings",
    "players",
    "top_scorers",
    "top_assists",
    "top_cards",
    "injuries",
    "predictions",
    "odds",
)
# The season_coverage columns: the fixtures' flags (prefixed), then the season's own.
COVERAGE_COLUMNS = (
    *(f"fixtures_{flag}" for flag in COVERAGE_FIXTURE_FLAGS),
    *COVERAGE_SEASON_FLAGS,
)

BIGINT_MAX = 2**63 - 1
STRICT = ConfigDict(strict=True)


def is_id(value: Any) -> bool:
    """A positive integer that fits the tables' bigint ids."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= BIGINT_MAX


def parse_date(value: Any) -> dt.date | None:
    """An ISO date string as a date; None for anything else."""
    if not isinstance(value, str):
        return None
    return _parse_date_text(value)


@functools.lru_cache(maxsize=1 << 16)
def _parse_date_text(value: str) -> dt.date | None:
    # Seasons share their dates: the cache turns ~200,000 parses into a few thousand.
    if not DATE.match(value):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _iso_date(value: str) -> str:
    if parse_date(value) is None:
        raise ValueError("expected a YYYY-MM-DD date")
    return value


def _text(max_length: int) -> Any:
    return Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)
    ]


Id = Annotated[int, Field(gt=0, le=BIGINT_MAX)]
Url = Annotated[str, StringConstraints(pattern=r"^https?://")]
IsoDate = Annotated[str, AfterValidator(_iso_date)]


@with_config(STRICT)
class Country(TypedDict):
    """One country: the name is its identity (several countries share one code)."""

    name: _text(120)  # type: ignore[valid-type]
    code: NotRequired[Annotated[str, StringConstraints(pattern=COUNTRY_CODE.pattern)] | None]
    flag: NotRequired[Url | None]


@with_config(STRICT)
class League(TypedDict):
    """One league or cup, keyed by the provider's league id, with the name of its country
    (None when that country was rejected, which rejects the league too)."""

    id: Id
    name: _text(300)  # type: ignore[valid-type]
    type: Literal["League", "Cup"]
    logo: Url | None
    country_name: _text(120)  # type: ignore[valid-type]


@with_config(STRICT)
class Season(TypedDict):
    """One season of a league: its year, dates and whether it is current."""

    year: Annotated[int, Field(ge=1850, le=2100)]
    start: NotRequired[IsoDate | None]
    end: NotRequired[IsoDate | None]
    current: bool


def _start_not_after_end(season: Season) -> Season:
    start, end = season.get("start"), season.get("end")
    # ISO dates compare as strings do.
    if start is not None and end is not None and start > end:
        raise ValueError(f"the season starts ({start}) after it ends ({end})")
    return season


@with_config(STRICT)
class FixturesCoverage(TypedDict):
    events: bool
    lineups: bool
    statistics_fixtures: bool
    statistics_players: bool


@with_config(STRICT)
class Coverage(TypedDict):
    """What API-Football covers for a season: twelve flags, four of them under `fixtures`."""

    fixtures: FixturesCoverage
    standings: bool
    players: bool
    top_scorers: bool
    top_assists: bool
    top_cards: bool
    injuries: bool
    predictions: bool
    odds: bool


COUNTRIES = TypeAdapter(list[Country])
LEAGUES = TypeAdapter(list[League])
SEASONS = TypeAdapter(list[Annotated[Season, AfterValidator(_start_not_after_end)]])
COVERAGES = TypeAdapter(list[Coverage])
