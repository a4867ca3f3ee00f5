"""The pandera model of a `user_data` row."""

from __future__ import annotations

import pandera.pandas as pa
from pandera.typing import Series


class UserDataRow(pa.DataFrameModel):
    """One user's basic profile, as parsed from the Torn API."""

    user_id: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": 255})
    name: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": 255})
    player_id: Series[int] = pa.Field(gt=0, le=2_147_483_647)
    level: Series[float] = pa.Field(nullable=True, ge=1, le=100)
    gender: Series[str] = pa.Field(nullable=True, str_length={"max_value": 40})
    status_state: Series[str] = pa.Field(nullable=True, str_length={"max_value": 100})
    status_description: Series[str] = pa.Field(nullable=True, str_length={"max_value": 1000})

    class Config:
        coerce = True
        strict = True
