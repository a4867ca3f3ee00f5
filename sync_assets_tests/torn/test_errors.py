"""Torn error codes, HTTP errors, bad bodies and timeouts: each fails only its user.

An IP ban (8) or a disabled API (9) refuses every key, and stops the whole batch instead.
"""

from __future__ import annotations

import json

import dagster as dg
import pytest

from sync_assets.sandbox import torn as sandbox
from sync_assets.torn.client import KEY_ERRORS, RETRYABLE_ERRORS, STOP_ERRORS
from sync_assets_tests.processes import wait_for
from sync_assets_tests.torn.conftest import (
    check,
    configure,
    failure_metadata,
    failure_text,
    metadata,
    query,
    quick_api,
    seed,
    sync,
)


def _calls_per_user(torn) -> dict[int, int]:
    counts: dict[int, int] = {}
    for call in torn.recorded(sandbox.PREFIX):
        index = sandbox.index_of_key(call["query"].get("key", ""))
        counts[index] = counts.get(index, 0) + 1
    return counts


@pytest.mark.parametrize("code", [2, 10, 13, 16, 18])
def test_an_unusable_key_fails_its_user_without_retrying(torn, database_url, code) -> None:
    seed(database_url, range(5))
    configure(torn, behaviours={"2": f"error:{code}"})
    meta = metadata(sync())
    reason = KEY_ERRORS[code]
    assert (meta["users_succeeded"], meta["users_failed"]) == (4, 1)
    assert meta["failed_by_reason"] == {reason: 1}
    assert meta["failed_users"][reason]["user_ids"] == [sandbox.user_id_at(2)]
    assert meta["failed_users"][reason]["example"].startswith(f"Torn error {code} (")
    assert _calls_per_user(torn)[2] == 1 and meta["error_code_retries"] == 0


@pytest.mark.parametrize("code", [5, 12, 15, 17, 24])
def test_a_busy_api_is_retried_then_fails_only_that_user(torn, database_url, code) -> None:
    seed(database_url, range(5))
    # User 1 recovers after two refusals; user 3 is refused every time.
    configure(torn, behaviours={"1": f"error:{code}:2", "3": f"error:{code}"})
    meta = metadata(sync())
    reason = RETRYABLE_ERRORS[code]
    assert (meta["users_succeeded"], meta["users_failed"]) == (4, 1)
    assert meta["failed_by_reason"] == {reason: 1}
    assert "after 2 retries" in meta["failed_users"][reason]["example"]
    calls = _calls_per_user(torn)
    assert (calls[1], calls[3], calls[0]) == (3, 3, 1)  # QUICK_API: error_retries=2
    assert meta["error_code_retries"] == 4
    stored = {r[0] for r in query(database_url, "SELECT user_id FROM user_data")}
    assert sandbox.user_id_at(1) in stored and sandbox.user_id_at(3) not in stored


def test_other_errors_bad_bodies_and_http_errors_fail_their_users(torn, database_url) -> None:
    seed(database_url, range(8))
    configure(
        torn,
        behaviours={"1": "error:14", "2": "malformed", "3": "invalid", "4": "http:502"},
    )
    result = sync()
    meta = metadata(result)
    assert meta["failed_by_reason"] == {
        "daily_read_limit": 1,
        "malformed_response": 1,
        "invalid_profile": 1,
        "http_error": 1,
    }
    assert meta["users_succeeded"] == 4
    assert "player_id" in meta["failed_users"]["invalid_profile"]["example"]
    assert meta["failed_users"]["http_error"]["example"] == "HTTP 502 after 1 retries"  # 2 calls
    calls = _calls_per_user(torn)
    assert (calls[1], calls[2], calls[4]) == (1, 1, 2)  # HTTP 5xx: the client's one retry
    assert meta["retries"] == 1
    # 4 of 8 failed: above the 10% warning threshold, below "all failed".
    evaluation = check(result)
    assert result.success and not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["failed_share"].value == 0.5


def test_a_timeout_fails_that_user_and_a_slow_user_blocks_no_one(torn, database_url) -> None:
    seed(database_url, range(30))
    configure(torn, slow_seconds=1.5, behaviours={"4": "slow", "9": "slow"})
    api = quick_api(read_timeout=0.5)
    meta = metadata(sync({"concurrency": 4}, api=api))
    assert meta["failed_by_reason"] == {"timeout": 2}
    assert meta["failed_users"]["timeout"]["example"] == "no answer within 0.5 s (after 1 retries)"
    assert meta["users_succeeded"] == 28
    assert meta["retries"] == 2  # each read timeout was retried once

    # While user 4's first request hung (the sandbox answers it 1.5 s after it arrived), the
    # other users went on in the other slots: some were answered in that window.
    def calls() -> list[tuple[int, float]]:
        return [(sandbox.index_of_key(c["query"]["key"]), c["at"]) for c in torn.recorded()]

    # The sandbox records a slow answer after its delay, which may be after the run gave up.
    wait_for(lambda: any(user == 4 for user, _ in calls()), 60, "user 4's slow answer")
    hung_until = min(at for user, at in calls() if user == 4)
    answered_meanwhile = [
        user for user, at in calls() if user not in (4, 9) and hung_until - 1.5 < at < hung_until
    ]
    assert answered_meanwhile

    # A slow user within the timeout succeeds; the fast ones finish long before it.
    configure(torn, slow_seconds=1.0, behaviours={"4": "ok", "9": "slow"})
    torn.forget_requests()
    relaxed = quick_api(read_timeout=3.0)
    meta = metadata(sync({"concurrency": 4}, api=relaxed))
    assert (meta["users_succeeded"], meta["users_failed"]) == (30, 0)
    answered = {sandbox.index_of_key(c["query"]["key"]): c["at"] for c in torn.recorded()}
    # (user 4's answers from the first run may still arrive: the server logs after sleeping)
    assert max(t for i, t in answered.items() if i not in (4, 9)) < answered[9]


def test_an_http_error_names_only_the_retries_made_for_that_call(torn, database_url) -> None:
    seed(database_url, range(3))
    configure(torn, behaviours={"1": "http:404"})  # not a retried status: one call
    meta = metadata(sync(api=quick_api(http_retries=3)))
    assert meta["failed_users"]["http_error"]["example"] == "HTTP 404"
    assert _calls_per_user(torn)[1] == 1 and meta["retries"] == 0


@pytest.mark.parametrize("code", [8, 9])
def test_an_ip_ban_or_disabled_api_stops_the_batch_and_fails_the_run(
    torn, database_url, code
) -> None:
    seed(database_url, range(40))
    configure(torn, outage={"code": code})
    result = sync({"concurrency": 4}, raise_on_error=False)
    assert not result.success
    reason = STOP_ERRORS[code]
    text = failure_text(result)
    assert "stopped early" in text and reason in text and "0 of 40 users refreshed" in text
    meta = failure_metadata(result)
    assert meta["stopped_early"] is True and f"Torn error {code} (" in meta["stop_reason"]
    assert (meta["users_succeeded"], meta["users_failed"], meta["users_not_reached"]) == (0, 0, 40)
    assert meta["error_code_retries"] == 0
    calls = _calls_per_user(torn)
    # No user was retried and none started once the first refusal came back: at most the users
    # already handed to the pool (2 x concurrency) asked, not 40 users x (1 + error_retries).
    assert set(calls.values()) == {1} and len(calls) <= 8
    assert query(database_url, "SELECT count(*) FROM user_data") == [(0,)]
    shown = text + json.dumps(meta, default=str)
    assert not [i for i in range(40) if sandbox.api_key_at(i) in shown]


def test_a_ban_mid_run_commits_the_users_fetched_before_it(torn, database_url) -> None:
    seed(database_url, range(40))
    configure(torn, outage={"code": 8, "after": 10})
    result = sync({"concurrency": 2, "chunk_size": 4})
    meta = metadata(result)
    assert meta["stopped_early"] is True and "ip_blocked" in meta["stop_reason"]
    assert (meta["users_succeeded"], meta["users_failed"], meta["users_not_reached"]) == (10, 0, 30)
    assert query(database_url, "SELECT count(*) FROM user_data") == [(10,)]
    assert len(torn.recorded(sandbox.PREFIX)) <= 10 + 2 * 2  # and those handed to the pool
    # 30 of 40 not refreshed: the run succeeds (some were), the check warns.
    evaluation = check(result)
    assert not evaluation.passed and evaluation.metadata["not_reached"].value == 30
    assert evaluation.metadata["failed_share"].value == 0.75
