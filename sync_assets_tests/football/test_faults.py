"""Provider faults: 429 with and without Retry-After, 5xx bursts, 499, slow answers, broken bodies,
rate-limit errors inside HTTP 200 bodies, an exhausted daily quota; and failures that change
nothing."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from sync_assets.football.client import FootballApiResource
from sync_assets.sandbox import football as sandbox
from sync_assets_tests.football.conftest import (
    LEAGUES,
    configure,
    counts,
    dump,
    failure_message,
    metadata,
    quick_api,
    sync,
)

LEAGUES_PATH = sandbox.PREFIX + "/leagues"
COUNTRIES_PATH = sandbox.PREFIX + "/countries"


def _leagues_requests(server) -> list[dict]:
    return server.recorded(LEAGUES_PATH)


def test_a_429_with_retry_after_is_waited_out(football, database_url) -> None:
    football.faults.add(path=LEAGUES_PATH, kind="status", status=429, retry_after="1", count=1)
    result = sync(api=quick_api(backoff_factor=0.0))
    assert result.success
    first, second = _leagues_requests(football)
    assert (first["status"], second["status"]) == (429, 200)
    assert second["at"] - first["at"] >= 0.95  # the Retry-After, not the tiny backoff
    assert metadata(result, "leagues")["retries"] == 1
    assert counts(database_url)["leagues"] == LEAGUES


@pytest.mark.parametrize("in_envelope", [False, True], ids=["bare", "envelope"])
def test_a_429_without_retry_after_waits_out_the_per_minute_limit(
    football, database_url, in_envelope
) -> None:
    body = sandbox.too_many_requests_body("leagues", in_envelope=in_envelope)
    football.faults.add(path=LEAGUES_PATH, kind="status", status=429, body=body, count=2)
    result = sync(api=quick_api(backoff_factor=0.0, rate_limit_wait_seconds=0.5))
    assert result.success
    requests = _leagues_requests(football)
    assert [r["status"] for r in requests] == [429, 429, 200]
    # rate_limit_wait_seconds between the answers, not urllib3's backoff (zero here)
    assert all(b["at"] - a["at"] >= 0.45 for a, b in zip(requests, requests[1:], strict=False))
    meta = metadata(result, "leagues")
    assert (meta["rate_limit_waits"], meta["retries"]) == (2, 2)
    assert counts(database_url)["leagues"] == LEAGUES


def test_a_429_that_outlasts_the_waits_fails_after_the_bounded_attempts(
    football, database_url
) -> None:
    body = sandbox.too_many_requests_body("leagues")
    football.faults.add(path=LEAGUES_PATH, kind="status", status=429, body=body, count=-1)
    api = quick_api(backoff_factor=0.0, rate_limit_wait_seconds=0.1, rate_limit_attempts=3)
    result = sync(api=api, raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert "still over the per-minute rate limit after 3 answers and 2 waits" in message
    assert sandbox.TOO_MANY_REQUESTS_ERROR in message
    assert [r["status"] for r in _leagues_requests(football)] == [429] * 3  # no urllib3 retries
    assert set(counts(database_url).values()) == {0}


def test_a_429_naming_the_daily_quota_fails_at_once(football, database_url) -> None:
    body = {"errors": {"requests": sandbox.DAILY_LIMIT_ERROR}}
    football.faults.add(path=LEAGUES_PATH, kind="status", status=429, body=body, count=-1)
    result = sync(raise_on_error=False)
    assert not result.success
    assert "daily request quota" in failure_message(result)
    assert len(_leagues_requests(football)) == 1


@pytest.mark.parametrize(("status", "retryable"), [(522, True), (503, True), (404, False)])
def test_a_failed_status_is_retryable_only_when_it_may_pass(
    football, database_url, status, retryable
) -> None:
    football.faults.add(path=LEAGUES_PATH, kind="status", status=status, count=-1)
    with pytest.raises(dg.Failure) as failed:
        sync(api=quick_api(max_retries=1))
    assert f"HTTP {status}" in str(failed.value.description)
    assert failed.value.allow_retries is retryable
    assert set(counts(database_url).values()) == {0}


def test_a_burst_of_5xx_and_499_is_survived(football, database_url) -> None:
    football.faults.set(
        [
            {"path": COUNTRIES_PATH, "kind": "status", "status": 499, "count": 1},
            {"path": LEAGUES_PATH, "kind": "status", "status": 502, "count": 1},
            {"path": LEAGUES_PATH, "kind": "status", "status": 503, "count": 1},
            {"path": LEAGUES_PATH, "kind": "status", "status": 500, "count": 1},
        ]
    )
    result = sync()
    assert result.success
    assert [r["status"] for r in _leagues_requests(football)] == [502, 503, 500, 200]
    meta = metadata(result, "seasons")
    assert (meta["requests"], meta["retries"]) == (2, 4)
    assert counts(database_url)["leagues"] == LEAGUES


def test_slow_answers_and_broken_bodies_are_fetched_again(football, database_url) -> None:
    football.faults.set(
        [
            {"path": COUNTRIES_PATH, "kind": "slow", "delay": 1.0, "count": 1},
            {"path": LEAGUES_PATH, "kind": "malformed", "count": 1},
            {"path": LEAGUES_PATH, "kind": "drop", "count": 1},
        ]
    )
    result = sync(api=quick_api(read_timeout=0.4))
    assert result.success
    assert counts(database_url)["leagues"] == LEAGUES
    assert metadata(result, "leagues")["retries"] >= 3


def _cut_in_the_items() -> str:
    """The whole /leagues answer cut off two thirds of the way in: a complete envelope header,
    then items that stop mid-way (found only while the items are being written)."""
    items = [sandbox.league_item(i, sandbox.countries()) for i in range(LEAGUES)]
    text = json.dumps(sandbox.envelope("leagues", {}, items))
    return text[: len(text) * 2 // 3]


def test_a_body_that_breaks_off_mid_items_is_fetched_again_and_written_once(
    football, database_url
) -> None:
    football.faults.add(path=LEAGUES_PATH, kind="malformed", body=_cut_in_the_items(), count=1)
    result = sync({"chunk_size": 20})  # several chunks were written before the break was read
    assert result.success
    assert len(_leagues_requests(football)) == 2
    leagues = metadata(result, "leagues")
    assert (leagues["fetched"], leagues["inserted"], leagues["retries"]) == (LEAGUES, LEAGUES, 1)
    assert counts(database_url)["leagues"] == LEAGUES


def test_a_body_that_keeps_breaking_off_fails_and_changes_nothing(football, database_url) -> None:
    sync()
    before = dump(database_url)
    football.faults.add(path=LEAGUES_PATH, kind="malformed", body=_cut_in_the_items(), count=-1)
    result = sync({"chunk_size": 20}, raise_on_error=False)
    assert not result.success
    assert "/leagues: the answer is not complete JSON" in failure_message(result)
    assert "(3 attempts)" in failure_message(result)
    assert dump(database_url) == before


def test_a_rate_limit_error_inside_a_200_body_waits_and_asks_again(football, database_url) -> None:
    football.faults.add(
        path=LEAGUES_PATH, kind="body", body=sandbox.rate_limit_body("leagues"), count=2
    )
    result = sync(api=quick_api(rate_limit_wait_seconds=0.5))
    assert result.success
    statuses = [r["status"] for r in _leagues_requests(football)]
    assert statuses == [200, 200, 200]
    third, second = _leagues_requests(football)[2], _leagues_requests(football)[1]
    assert third["at"] - second["at"] >= 0.45
    meta = metadata(result, "leagues")
    assert (meta["rate_limit_waits"], meta["retries"]) == (2, 2)


def test_the_per_minute_limit_of_the_sandbox_is_waited_out(football, database_url) -> None:
    configure(football, per_minute=1)
    api = quick_api(rate_limit_wait_seconds=0.2, rate_limit_attempts=2)
    result = sync(api=api, raise_on_error=False)
    assert not result.success  # 1 per minute cannot be waited out in two short waits
    message = failure_message(result)
    assert "per-minute rate limit" in message and "10 requests" not in message
    assert counts(database_url) == {t: 0 for t in counts(database_url)}


def test_an_exhausted_daily_quota_fails_at_once(football, database_url) -> None:
    sync()
    before = dump(database_url)
    configure(football, per_day=1, leagues=LEAGUES + 5)
    result = sync(raise_on_error=False)
    assert not result.success
    assert "daily request quota" in failure_message(result)
    assert len(football.recorded(sandbox.PREFIX)) == 2 + 1  # the first answer stops it: no retry
    assert dump(database_url) == before


def test_retries_exhausted_fail_the_run_and_leave_every_table_as_it_was(
    football, database_url
) -> None:
    sync()
    before = dump(database_url)
    configure(football, leagues=LEAGUES + 30)  # what a successful run would now add
    football.faults.add(path=LEAGUES_PATH, kind="status", status=503, count=-1)
    result = sync(raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert "HTTP 503" in message and "left as they were" in message
    assert [r["status"] for r in _leagues_requests(football)] == [200] + [503] * 4
    assert dump(database_url) == before


def test_the_default_client_is_patient() -> None:
    api = FootballApiResource()
    assert api.max_retries >= 3 and api.rate_limit_wait_seconds >= 60
    assert api.requests_per_minute == 10  # the free plan's per-minute limit


def test_an_empty_league_list_is_refused(football, database_url) -> None:
    sync()
    before = dump(database_url)
    football.faults.add(
        path=LEAGUES_PATH, kind="body", body=sandbox.envelope("leagues", {}, []), count=1
    )
    result = sync(raise_on_error=False)
    assert not result.success
    assert "answered no leagues at all" in failure_message(result)
    assert dump(database_url) == before


def test_a_provider_that_cannot_be_reached_fails_with_a_clear_error(
    football, database_url, monkeypatch
) -> None:
    monkeypatch.setenv("API_FOOTBALL_BASE_URL", "http://127.0.0.1:9/football")
    result = sync(raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert "API-Football could not be read" in message and "ConnectionError" in message
    assert set(counts(database_url).values()) == {0}
