"""The user sync's database connection killed while it writes: the chunk rolls back whole, the
run fails with the database's error (no hang, with fetches in flight), and a re-run converges
to the rows of an undisturbed sync."""

from __future__ import annotations

import pytest

from sync_assets_tests.conftest import create_database
from sync_assets_tests.pg_faults import (
    backend_killed_mid_write,
    rows_as_text,
    rows_without_times,
    says_connection_lost,
)
from sync_assets_tests.torn.conftest import failure_text, seed, sync

TABLE = "torn.user_data"
CONFIG = {"concurrency": 4, "chunk_size": 100}


def test_a_connection_killed_mid_write_keeps_the_last_sync_and_a_rerun_converges(
    torn, database_url, server_url, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(database_url, range(10))
    assert sync(CONFIG).success
    before = rows_as_text(database_url, TABLE)

    seed(database_url, range(10, 16))  # the second sync has six new users to write
    with backend_killed_mid_write(database_url, TABLE) as killed:
        failed = sync(CONFIG, raise_on_error=False)
    assert "user_data" in killed.query
    assert not failed.success
    message = failure_text(failed)
    assert says_connection_lost(message), message
    assert rows_as_text(database_url, TABLE) == before

    assert sync(CONFIG).success
    converged = rows_without_times(database_url, TABLE)
    assert len(converged) == 16

    undisturbed = create_database(server_url)
    monkeypatch.setenv("DATABASE_URL", undisturbed)
    seed(undisturbed, range(16))
    assert sync(CONFIG).success
    assert rows_without_times(undisturbed, TABLE) == converged
