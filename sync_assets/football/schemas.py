"""Pandera models for the rows flattened from API-Football answers.

Columns hold the values exactly as the provider sent them (object dtype), and every check is
element-wise, so one bad value rejects one row (with the value in the sample) and never the
whole frame: a JSON `null` where a boolean belongs must not turn into `False` on the way.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

COUNTRY_CODE = re.compile(r"^[A-Z]{2}(-[A-Z]{2,4})?$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
LEAGUE_TYPES = frozenset({"League", "Cup"})
COVERAGE_COLUMNS = (
    "fixtures_events",
    "fixtures_lineups",
    "fixtures_statistics_fixtures",
    "fixtures_statistics_players",
    "standings",
    "players",
    "top_scorers",
    "top_assists",
    "top_cards",
    "injuries",
    "predictions",
    "odds",
)


BIGINT_MAX = 2**63 - 1


def is_id(value: Any) -> bool:
    """A positive integer that fits the tables' bigint ids."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= BIGINT_MAX


def is_text(value: Any, max_length: int = 300) -> bool:
    return isinstance(value, str) and 0 < len(value.strip()) <= max_length


def is_url_or_null(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.startswith(("http://", "https://")))


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


class CountryRow(pa.DataFrameModel):
    """One country: the name is its identity (several countries share one code)."""

    name: Series[object] = pa.Field(nullable=False)
    code: Series[object] = pa.Field(nullable=True)
    flag: Series[object] = pa.Field(nullable=True)

    @pa.check("name", element_wise=True, name="non-empty name")
    def _name(cls, value: Any) -> bool:
        return is_text(value, 120)

    @pa.check("code", element_wise=True, name="ISO 3166 code or null")
    def _code(cls, value: Any) -> bool:
        return value is None or (isinstance(value, str) and bool(COUNTRY_CODE.match(value)))

    @pa.check("flag", element_wise=True, name="URL or null")
    def _flag(cls, value: Any) -> bool:
        return is_url_or_null(value)


class LeagueRow(pa.DataFrameModel):
    """One league or cup, keyed by the provider's league id."""

    id: Series[object] = pa.Field(nullable=False)
    name: Series[object] = pa.Field(nullable=False)
    type: Series[object] = pa.Field(nullable=False)
    logo: Series[object] = pa.Field(nullable=True)
    country_name: Series[object] = pa.Field(nullable=False)

    @pa.check("id", element_wise=True, name="positive bigint id")
    def _id(cls, value: Any) -> bool:
        return is_id(value)

    @pa.check("name", element_wise=True, name="non-empty name")
    def _name(cls, value: Any) -> bool:
        return is_text(value)

    @pa.check("type", element_wise=True, name="League or Cup")
    def _type(cls, value: Any) -> bool:
        return value in LEAGUE_TYPES

    @pa.check("logo", element_wise=True, name="URL or null")
    def _logo(cls, value: Any) -> bool:
        return is_url_or_null(value)

    @pa.check("country_name", element_wise=True, name="a valid country")
    def _country(cls, value: Any) -> bool:
        return is_text(value, 120)


class SeasonRow(pa.DataFrameModel):
    """One season of a league: its year, dates and whether it is current."""

    league_id: Series[object] = pa.Field(nullable=False)
    year: Series[object] = pa.Field(nullable=False)
    start: Series[object] = pa.Field(nullable=True)
    end: Series[object] = pa.Field(nullable=True)
    current: Series[object] = pa.Field(nullable=False)

    # Vectorized checks: a season table at 10x has ~100,000 rows, and a Python call per value
    # through pandera's element-wise wrapper costs more than the rest of the validation.
    @pa.check("year", name="a year between 1850 and 2100")
    def _year(cls, column: pd.Series) -> pd.Series:
        integers = column.map(type).eq(int)
        years = pd.to_numeric(column.where(integers), errors="coerce")
        return integers & years.between(1850, 2100)

    @pa.check("start", name="YYYY-MM-DD or null")
    def _start(cls, column: pd.Series) -> pd.Series:
        return column.map(parse_date).notna()

    @pa.check("end", name="YYYY-MM-DD or null")
    def _end(cls, column: pd.Series) -> pd.Series:
        return column.map(parse_date).notna()

    @pa.check("current", name="true or false")
    def _current(cls, column: pd.Series) -> pd.Series:
        return column.map(type).eq(bool)

    @pa.dataframe_check(name="start on or before end")
    def _ordered(cls, frame: pd.DataFrame) -> pd.Series:
        dated = frame["start"].map(parse_date).notna() & frame["end"].map(parse_date).notna()
        # ISO dates compare as strings do.
        return ~dated | (frame["start"].where(dated, "") <= frame["end"].where(dated, ""))


def _all_booleans(column: pd.Series) -> pd.Series:
    # type() per value, without a Python frame per value: 12 flags x every season adds up.
    return column.map(type).eq(bool)


# Twelve boolean flags: built as a schema rather than a model so the list is written once.
CoverageRow = pa.DataFrameSchema(
    {
        "league_id": pa.Column(object, nullable=False),
        "year": pa.Column(object, nullable=False),
        **{
            name: pa.Column(
                object,
                checks=pa.Check(_all_booleans, name="true or false"),
                nullable=False,
            )
            for name in COVERAGE_COLUMNS
        },
    },
    name="SeasonCoverageRow",
)
