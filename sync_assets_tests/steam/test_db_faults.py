"""The steam sync's database connection killed while it writes: the catalog's one transaction and
a details chunk both roll back whole, the run fails with the database's error (no hang, with
fetches still in flight), and a re-run converges to the rows of an undisturbed sync."""

from __future__ import annotations

import pytest

from sync_assets_tests.conftest import create_database
from sync_assets_tests.pg_faults import (
    backend_killed_mid_write,
    rows_as_text,
    rows_without_times,
    says_connection_lost,
)
from sync_assets_tests.steam.conftest import configure, failure_message, sync

TABLES = ("steam.apps", "steam.app_details", "steam.app_sync_status")
DETAILS = {"batch_size": 100, "concurrency": 4, "chunk_size": 100}


def everything(url: str) -> dict[str, list[str]]:
    return rows_as_text(url, *TABLES)


def without_times(url: str) -> dict[str, list[tuple]]:
    return {t: rows_without_times(url, t) for t in TABLES}


@pytest.mark.parametrize(
    ("table", "step"),
    [("steam.apps", "steam_app_catalog"), ("steam.app_sync_status", "steam_app_details")],
    ids=["catalog", "details"],
)
def test_a_connection_killed_mid_write_keeps_the_last_sync_and_a_rerun_converges(
    steam, database_url, server_url, monkeypatch: pytest.MonkeyPatch, table, step
) -> None:
    configure(steam, catalog_size=40)
    assert sync(DETAILS).success
    before = everything(database_url)

    configure(steam, catalog_size=60)  # the second sync has 20 new apps to write
    # The catalog writes apps in one transaction; a details chunk writes app_details, then
    # app_sync_status: its details are already written when the backend dies.
    with backend_killed_mid_write(database_url, table) as killed:
        failed = sync(DETAILS, raise_on_error=False, catalog=step == "steam_app_catalog")
    assert table.split(".")[1] in killed.query
    assert not failed.success
    message = failure_message(failed, step)
    assert says_connection_lost(message), message
    assert everything(database_url) == before

    assert sync(DETAILS).success
    converged = without_times(database_url)
    assert len(converged["steam.apps"]) == 60

    undisturbed = create_database(server_url)
    monkeypatch.setenv("DATABASE_URL", undisturbed)
    assert sync(DETAILS).success
    assert without_times(undisturbed) == converged
