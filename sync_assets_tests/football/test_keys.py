"""The API key: a wrong or missing key fails fast with one line naming SPORTS_PROVIDER_API_KEY,
and the key shows up nowhere (stdout, stderr, compute logs, Dagster's event storage)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import serialize_value

from sync_assets.sandbox import football as sandbox
from sync_assets_tests.football.conftest import counts, failure_message, metadata, sync

SECRET = "fb-secret-7f3a9c1e5b2d"


def test_a_wrong_key_fails_fast_with_one_line_naming_the_setting(
    football, database_url, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPORTS_PROVIDER_API_KEY", "not-the-right-key")
    result = sync(raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert "SPORTS_PROVIDER_API_KEY" in message and "refused the key" in message
    assert "\n" not in message and "not-the-right-key" not in message
    assert len(football.recorded(sandbox.PREFIX)) == 1  # answered 200 + errors.token; no retry
    assert counts(database_url) == dict.fromkeys(counts(database_url), 0)


def test_a_missing_key_fails_before_any_request(
    football, database_url, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPORTS_PROVIDER_API_KEY")
    result = sync(raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert "SPORTS_PROVIDER_API_KEY is not set" in message and "\n" not in message
    assert football.recorded(sandbox.PREFIX) == []


def test_the_key_is_sent_as_the_header_only(football, database_url) -> None:
    sync(checks=False)
    [countries, leagues] = football.recorded(sandbox.PREFIX)
    for request in (countries, leagues):
        assert request["headers"]["x-apisports-key"] == sandbox.DEMO_KEY
        assert request["query"] == {}


def test_the_key_is_nowhere_after_a_retried_failed_run(
    football, database_url, pg_instance, monkeypatch, capfd, tmp_path: Path
) -> None:
    monkeypatch.setenv("SPORTS_PROVIDER_API_KEY", SECRET)
    football.providers[sandbox.PREFIX].configure({"keys": [SECRET]})
    ok = sync(instance=pg_instance)
    assert metadata(ok, "leagues")["inserted"] > 0
    football.faults.set(
        [
            {"path": sandbox.PREFIX + "/countries", "kind": "drop", "count": 1},
            {"path": sandbox.PREFIX + "/leagues", "kind": "status", "status": 502, "count": -1},
        ]
    )
    failed = sync(instance=pg_instance, raise_on_error=False)
    assert not failed.success
    assert metadata(ok, "leagues")["requests"] == 2
    statuses = [r["status"] for r in football.recorded(sandbox.PREFIX + "/leagues")]
    assert statuses.count(502) == 4  # it retried before failing

    out, err = capfd.readouterr()
    assert "football_sync" in out + err  # the run's own logs went there
    assert SECRET not in out and SECRET not in err

    records = 0
    for run_id in (ok.run_id, failed.run_id):
        for record in pg_instance.get_records_for_run(run_id).records:
            records += 1
            assert SECRET not in serialize_value(record.event_log_entry)
        assert SECRET not in serialize_value(pg_instance.get_run_by_id(run_id))
    assert records > 20

    logs = [p for p in (tmp_path / "compute_logs").rglob("*") if p.is_file()]
    for path in logs:
        assert SECRET not in path.read_text(errors="replace")
    assert any(path.stat().st_size for path in logs), "no compute logs were captured"
