"""The user_data asset against the Torn stand-in: profiles, convergence, the request cap."""

from __future__ import annotations

import time

import psycopg

from sync_assets.sandbox import torn as sandbox
from sync_assets_tests.torn.conftest import (
    check,
    configure,
    failure_text,
    metadata,
    query,
    seed,
    sync,
)


def test_every_user_is_upserted_with_the_right_columns(torn, database_url) -> None:
    seed(database_url, range(12))
    result = sync()
    meta = metadata(result)
    assert (meta["users_total"], meta["users_succeeded"], meta["users_failed"]) == (12, 12, 0)
    assert meta["inserted"] == 12 and meta["requests"] == 12
    rows = query(
        database_url,
        "SELECT user_id, name, player_id, level, gender, status_state, status_description"
        " FROM user_data ORDER BY player_id",
    )
    expected = []
    for i in range(12):
        p = sandbox.profile_at(i)
        expected.append(
            (
                sandbox.user_id_at(i),
                p["name"],
                p["player_id"],
                p["level"],
                p["gender"],
                p["status"]["state"],
                p["status"]["description"],
            )
        )
    assert rows == expected
    evaluation = check(result)
    assert evaluation.passed
    # Every call carried the user's own key, the basic selection and our comment.
    calls = torn.recorded(sandbox.PREFIX)
    assert sorted(c["query"]["key"] for c in calls) == sorted(
        sandbox.api_key_at(i) for i in range(12)
    )
    assert {c["query"]["selections"] for c in calls} == {"basic"}


def test_a_rerun_converges_and_a_change_updates_one_row(torn, database_url) -> None:
    seed(database_url, range(6))
    first = metadata(sync())
    assert (first["inserted"], first["updated"], first["unchanged"]) == (6, 0, 0)
    before = dict(query(database_url, "SELECT user_id, updated_at FROM user_data"))
    second = metadata(sync())
    assert (second["inserted"], second["updated"], second["unchanged"]) == (0, 0, 6)
    assert dict(query(database_url, "SELECT user_id, updated_at FROM user_data")) == before

    # The player levels up: the next run updates that row only.
    configure(torn, levels={"2": 99})
    third = metadata(sync())
    assert (third["inserted"], third["updated"], third["unchanged"]) == (0, 1, 5)
    after = dict(query(database_url, "SELECT user_id, updated_at FROM user_data"))
    changed = [u for u in after if after[u] != before[u]]
    assert changed == [sandbox.user_id_at(2)]
    assert query(
        database_url, "SELECT level FROM user_data WHERE user_id = %s", (sandbox.user_id_at(2),)
    ) == [(99,)]


def test_the_newest_key_of_a_user_is_used(torn, database_url) -> None:
    seed(database_url, range(3))
    with psycopg.connect(database_url) as conn:
        # An older, revoked key of user 1 stays in the table.
        conn.execute(
            "INSERT INTO torn.user_keys (id, user_id, api_key, created_at)"
            " VALUES (gen_random_uuid(), %s, %s, now() - interval '30 days')",
            (sandbox.user_id_at(1), sandbox.stored_key_at(1, tamper=True)),
        )
    meta = metadata(sync())
    assert (meta["users_total"], meta["users_succeeded"], meta["users_failed"]) == (3, 3, 0)


def test_the_request_cap_holds_across_threads(torn, database_url) -> None:
    seed(database_url, range(40))
    started = time.monotonic()
    meta = metadata(sync({"concurrency": 5, "requests_per_second": 20}))
    assert meta["users_succeeded"] == 40
    times = sorted(c["at"] for c in torn.recorded(sandbox.PREFIX))
    peak = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert peak <= 20 + 5  # the rate plus the initial burst (one per slot)
    assert time.monotonic() - started >= (40 - 5) / 20


def test_no_user_keys_table_is_a_clear_error(torn, database_url) -> None:
    result = sync(raise_on_error=False)
    assert "table user_keys not found" in failure_text(result)


def test_no_users_is_a_quiet_success(torn, database_url) -> None:
    seed(database_url, [])
    result = sync()
    assert metadata(result)["users_total"] == 0 and check(result).passed
