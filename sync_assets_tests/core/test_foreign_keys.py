"""Foreign keys set aside for a load into empty tables, against the embedded PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest

from sync_assets.core.foreign_keys import all_empty, foreign_keys_set_aside
from sync_assets.core.postgres import PostgresResource

DDL = """
CREATE TABLE IF NOT EXISTS fk_parents (id integer PRIMARY KEY);
CREATE TABLE IF NOT EXISTS fk_children (
    id integer PRIMARY KEY,
    parent_id integer NOT NULL CONSTRAINT children_parent REFERENCES fk_parents (id)
        ON DELETE CASCADE
);
"""
KEYS = """SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
    WHERE contype = 'f' AND conrelid = 'fk_children'::regclass"""
KEPT = [("children_parent", "FOREIGN KEY (parent_id) REFERENCES fk_parents(id) ON DELETE CASCADE")]


@pytest.fixture
def db(database_url: str) -> PostgresResource:
    resource = PostgresResource(schema_name="fk_test")
    resource.apply_ddl(DDL)
    return resource


def test_the_keys_are_gone_during_the_block_and_back_after_it(db: PostgresResource) -> None:
    with db.transaction() as conn:
        assert all_empty(conn, ["fk_parents", "fk_children"])
        with foreign_keys_set_aside(conn, ["fk_children"]) as set_aside:
            assert set_aside
            assert conn.execute(KEYS).fetchall() == []
            conn.execute("INSERT INTO fk_children VALUES (1, 10)")  # the parent comes later
            conn.execute("INSERT INTO fk_parents VALUES (10)")
        assert conn.execute(KEYS).fetchall() == KEPT
        assert not all_empty(conn, ["fk_parents", "fk_children"])
    with db.connect() as conn:
        assert conn.execute(KEYS).fetchall() == KEPT
        assert conn.execute("SELECT * FROM fk_children").fetchall() == [(1, 10)]


def test_a_row_breaking_a_key_fails_when_it_is_added_back_and_nothing_stays(
    db: PostgresResource,
) -> None:
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="children_parent"):
        with db.transaction() as conn, foreign_keys_set_aside(conn, ["fk_children"]):
            conn.execute("INSERT INTO fk_children VALUES (1, 99)")
    with db.connect() as conn:
        assert conn.execute(KEYS).fetchall() == KEPT
        assert conn.execute("SELECT count(*) FROM fk_children").fetchone() == (0,)


def test_a_reader_holding_the_table_keeps_the_keys_in_place(db: PostgresResource) -> None:
    with db.connect() as reader:
        reader.execute("SELECT count(*) FROM fk_children")  # holds its lock until it ends
        with db.transaction() as conn:
            with foreign_keys_set_aside(conn, ["fk_children"]) as set_aside:
                assert not set_aside
                assert conn.execute(KEYS).fetchall() == KEPT
                with pytest.raises(psycopg.errors.ForeignKeyViolation):
                    with conn.transaction():
                        conn.execute("INSERT INTO fk_children VALUES (1, 99)")
                conn.execute("INSERT INTO fk_parents VALUES (1)")
            assert conn.execute("SHOW lock_timeout").fetchone() == ("0",)
        reader.rollback()
    with db.connect() as conn:
        assert conn.execute(KEYS).fetchall() == KEPT
        assert conn.execute("SELECT id FROM fk_parents").fetchall() == [(1,)]


def test_a_role_that_does_not_own_the_tables_keeps_the_keys(db: PostgresResource) -> None:
    with db.connect() as conn:
        conn.execute(
            "DO $$ BEGIN CREATE ROLE fk_writer; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
        conn.execute("GRANT USAGE ON SCHEMA fk_test TO fk_writer")
        conn.execute("GRANT SELECT, INSERT ON fk_parents, fk_children TO fk_writer")
        conn.commit()
    with db.transaction() as conn:
        conn.execute("SET LOCAL ROLE fk_writer")
        with foreign_keys_set_aside(conn, ["fk_children"]) as set_aside:
            assert not set_aside
            conn.execute("INSERT INTO fk_parents VALUES (1)")
            conn.execute("INSERT INTO fk_children VALUES (1, 1)")
    with db.connect() as conn:
        assert conn.execute(KEYS).fetchall() == KEPT
        assert conn.execute("SELECT * FROM fk_children").fetchall() == [(1, 1)]
