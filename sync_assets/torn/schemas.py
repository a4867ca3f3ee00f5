"""The pandera model of a `user_data` row, and the per-profile type check run before it."""

from __future__ import annotations

from typing import Any

import pandera.pandas as pa
from pandera.typing import Series

INT4_MAX = 2_147_483_647
PLAYER_ID_RANGE = (1, INT4_MAX)
LEVEL_RANGE = (1, 100)


class UserDataRow(pa.DataFrameModel):
    """One user's basic profile, as parsed from the Torn API."""

    user_id: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": 255})
    name: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": 255})
    player_id: Series[int] = pa.Field(ge=PLAYER_ID_RANGE[0], le=PLAYER_ID_RANGE[1])
    level: Series[float] = pa.Field(nullable=True, ge=LEVEL_RANGE[0], le=LEVEL_RANGE[1])
    gender: Series[str] = pa.Field(nullable=True, str_length={"max_value": 40})
    status_state: Series[str] = pa.Field(nullable=True, str_length={"max_value": 100})
    status_description: Series[str] = pa.Field(nullable=True, str_length={"max_value": 1000})

    class Config:
        coerce = True
        strict = True


def profile_problem(values: dict[str, Any]) -> str | None:
    """What is wrong with one profile's field types or integer ranges, or None when nothing."""
    # Checked per user before the chunk is validated: a value pandera cannot coerce fails the
    # whole column (a table-level error), not just its row.
    checks = (
        _integer_problem("player_id", values.get("player_id"), PLAYER_ID_RANGE, required=True),
        _integer_problem("level", values.get("level"), LEVEL_RANGE, required=False),
        _text_problem("name", values.get("name"), required=True),
        *(
            _text_problem(name, values.get(name), required=False)
            for name in ("gender", "status_state", "status_description")
        ),
    )
    return next((problem for problem in checks if problem), None)


def _integer_problem(
    name: str, value: Any, bounds: tuple[int, int], *, required: bool
) -> str | None:
    if value is None:
        return f"{name} is missing" if required else None
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{name} is {type(value).__name__}, not an integer"
    low, high = bounds
    if not low <= value <= high:
        return f"{name} is outside {low}..{high}"
    return None


def _text_problem(name: str, value: Any, *, required: bool) -> str | None:
    if value is None or value == "":
        return f"{name} is missing" if required else None
    if not isinstance(value, str):
        return f"{name} is {type(value).__name__}, not a string"
    return None
