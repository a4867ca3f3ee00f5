"""`sync-assets sql`: the answer of the last statement, and a SQL error as PostgreSQL says it."""

from __future__ import annotations

import pytest

from sync_assets.cli import main


def test_several_statements_print_the_last_ones_result(database_url, capsys) -> None:
    statement = (
        "CREATE SCHEMA IF NOT EXISTS cli_test; SET search_path TO cli_test;"
        " CREATE TABLE IF NOT EXISTS leagues (id int); INSERT INTO leagues VALUES (1), (2);"
        " SELECT count(*) AS leagues FROM leagues"
    )
    assert main(["sql", "--csv", statement]) == 0
    assert capsys.readouterr().out.splitlines() == ["leagues", "2"]


@pytest.mark.parametrize("statement", ["SELECT * FROM no_such_table", "SELEC 1"])
def test_a_sql_error_is_postgres_message_and_exit_code_1(database_url, capsys, statement) -> None:
    assert main(["sql", statement]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert captured.err.startswith("error: ") and (
        "SELEC" in captured.err or "no_such" in captured.err
    )
