"""Pandera models for the rows written to the steam tables."""

from __future__ import annotations

import pandera.pandas as pa
from pandera.typing import Series


class CatalogEntry(pa.DataFrameModel):
    """One app of the Web API's app list."""

    appid: Series[int] = pa.Field(gt=0)
    name: Series[str] = pa.Field(nullable=False)

    class Config:
        coerce = True


class AppDetailsRow(pa.DataFrameModel):
    """One parsed store answer (lists and dates are checked by the parser)."""

    appid: Series[int] = pa.Field(gt=0)
    type: Series[str] = pa.Field(nullable=True, str_length={"max_value": 40})
    name: Series[str] = pa.Field(nullable=True, str_length={"max_value": 1000})
    required_age: Series[float] = pa.Field(nullable=True, ge=0, le=21)
    price_initial_cents: Series[float] = pa.Field(nullable=True, ge=0)
    price_final_cents: Series[float] = pa.Field(nullable=True, ge=0)
    currency: Series[str] = pa.Field(nullable=True, str_matches=r"^[A-Z]{3}$")
    discount_percent: Series[float] = pa.Field(nullable=True, ge=0, le=100)
    metacritic_score: Series[float] = pa.Field(nullable=True, ge=0, le=100)
    recommendations: Series[float] = pa.Field(nullable=True, ge=0)

    class Config:
        coerce = True
        strict = False
