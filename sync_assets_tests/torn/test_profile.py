"""A profile with a mistyped or out-of-range field fails its user only, before the write."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sync_assets.sandbox import torn as sandbox
from sync_assets.torn.client import UserFetchError, parse_profile
from sync_assets_tests.torn.conftest import configure, metadata, query, seed, sync

REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "torn"
OKAY = json.loads((REFERENCE / "user_basic_okay__jgolla-torn-api.json").read_text("utf-8-sig"))


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"level": ""}, "level is str, not an integer"),
        ({"level": "80"}, "level is str, not an integer"),
        ({"level": 80.0}, "level is float, not an integer"),
        ({"level": True}, "level is bool, not an integer"),
        ({"level": 0}, "level is outside 1..100"),
        ({"level": 101}, "level is outside 1..100"),
        ({"player_id": "abc"}, "player_id is str, not an integer"),
        ({"player_id": None}, "player_id is missing"),
        ({"player_id": 2**31}, "player_id is outside 1..2147483647"),
        ({"player_id": -1}, "player_id is outside 1..2147483647"),
        ({"name": ""}, "name is missing"),
        ({"name": 42}, "name is int, not a string"),
        ({"gender": ["Female"]}, "gender is list, not a string"),
        ({"status": {"state": 1, "description": "Okay"}}, "status_state is int, not a string"),
    ],
)
def test_a_mistyped_field_is_an_invalid_profile(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(UserFetchError) as raised:
        parse_profile({**OKAY, **changes})
    assert (raised.value.reason, raised.value.message) == ("invalid_profile", problem)


def test_the_reference_profile_and_its_optional_fields_parse() -> None:
    profile = parse_profile(OKAY)
    assert (profile.player_id, profile.level, profile.name) == (2491575, 80, "jgolla")
    bare = parse_profile({"player_id": 1, "name": "n", "level": None, "gender": ""})
    assert (bare.level, bare.gender, bare.status_state) == (None, "", None)


def test_one_odd_profile_fails_its_user_and_the_others_are_written(torn, database_url) -> None:
    seed(database_url, range(6))
    configure(torn, answers={"2": {**OKAY, "level": ""}})
    meta = metadata(sync({"chunk_size": 10}))
    assert (meta["users_succeeded"], meta["users_failed"]) == (5, 1)
    assert meta["failed_by_reason"] == {"invalid_profile": 1}
    failed = meta["failed_users"]["invalid_profile"]
    assert failed["user_ids"] == [sandbox.user_id_at(2)]
    assert failed["example"] == "level is str, not an integer"
    assert sandbox.api_key_at(2) not in json.dumps(meta, default=str)
    stored = {r[0] for r in query(database_url, "SELECT user_id FROM user_data")}
    assert stored == {sandbox.user_id_at(i) for i in (0, 1, 3, 4, 5)}


def test_a_too_long_name_is_caught_by_the_row_schema_for_that_user_only(torn, database_url) -> None:
    seed(database_url, range(4))
    configure(torn, answers={"1": {**OKAY, "name": "x" * 300}})
    meta = metadata(sync())
    assert (meta["users_succeeded"], meta["users_failed"]) == (3, 1)
    assert meta["failed_users"]["invalid_profile"]["user_ids"] == [sandbox.user_id_at(1)]
    assert "name" in meta["failed_users"]["invalid_profile"]["example"]
    assert query(database_url, "SELECT count(*) FROM user_data") == [(3,)]
