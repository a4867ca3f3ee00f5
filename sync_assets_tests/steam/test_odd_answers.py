"""Store answers that are valid JSON but wrong for the tables: another app's data, prices past
int4, text PostgreSQL cannot hold; and the schema upgrade that widens the price columns."""

from __future__ import annotations

import re
from importlib import resources

import psycopg
import pytest

from sync_assets.core.postgres import PostgresResource
from sync_assets.sandbox import steam as sandbox
from sync_assets.steam import tables
from sync_assets.steam.parse import Redirect, redirect_of
from sync_assets_tests.steam.conftest import configure, details_metadata, query, sync

# As github.com/syntaxerrors/Steam/issues/52 shows: 209660 (the multiplayer) answers under its
# own key with the main game's data.
REDIRECTED = {
    "209660": {
        "success": True,
        "data": {
            "type": "game",
            "name": "Call of Duty: Advanced Warfare",
            "steam_appid": 209650,
            "required_age": 18,
            "is_free": False,
            "developers": ["Sledgehammer Games", "High Moon Studios"],
            "publishers": ["Activision"],
            "price_overview": {
                "currency": "USD",
                "initial": 3999,
                "final": 3999,
                "discount_percent": 0,
                "initial_formatted": "",
                "final_formatted": "$39.99",
            },
            "platforms": {"windows": True, "mac": False, "linux": False},
            "release_date": {"coming_soon": False, "date": "3 Nov, 2014"},
        },
    }
}
MAIN_GAME = {"209650": {**REDIRECTED["209660"], "data": {**REDIRECTED["209660"]["data"]}}}

# A cc=vn answer: prices in hundredths as for every currency, so 30,000,000 dong is past int4.
VND = {
    "20": {
        "success": True,
        "data": {
            **sandbox.app_details(20),
            "price_overview": {
                "currency": "VND",
                "initial": 3_000_000_000,
                "final": 2_400_000_000,
                "discount_percent": 20,
                "initial_formatted": "30.000.000₫",
                "final_formatted": "24.000.000₫",
            },
            "recommendations": {"total": 2_500_000_000},
        },
    }
}


def _details_row(url: str, appid: int) -> list[tuple]:
    return query(
        url, "SELECT appid, name, price_final_cents FROM app_details WHERE appid = %s", (appid,)
    )


def test_an_answer_with_another_apps_data_is_skipped_and_not_stored(steam, database_url) -> None:
    configure(
        steam,
        catalog_size=4,
        extra_apps=[{"appid": 209650, "name": ""}, {"appid": 209660, "name": ""}],
    )
    configure(
        steam,
        store=True,
        answers={209660: REDIRECTED, 209650: MAIN_GAME},
        behaviours={"30": "redirect"},
    )
    sync(details_asset=False)
    with psycopg.connect(database_url) as conn:  # what an earlier version stored for 209660
        conn.execute(
            "INSERT INTO steam.app_details (appid, name, price_final_cents)"
            " VALUES (209660, 'Call of Duty: Advanced Warfare', 3999)"
        )

    result = sync({"batch_size": 10}, catalog=False)
    meta = details_metadata(result)
    assert (meta["succeeded"], meta["skipped"], meta["failed"], meta["removed"]) == (4, 2, 0, 1)
    assert _details_row(database_url, 209660) == [] and _details_row(database_url, 30) == []
    assert _details_row(database_url, 209650) == [(209650, "Call of Duty: Advanced Warfare", 3999)]
    status = query(
        database_url,
        "SELECT appid, last_synced_at IS NOT NULL, consecutive_errors, last_error"
        " FROM app_sync_status WHERE appid IN (30, 209660) ORDER BY appid",
    )
    assert status == [
        (30, True, 0, "skipped: not available (redirects to 20)"),
        (209660, True, 0, "skipped: not available (redirects to 209650)"),
    ]
    [check] = result.get_asset_check_evaluations()
    assert check.passed


def test_prices_past_int4_are_stored_exactly(steam, database_url) -> None:
    configure(steam, catalog_size=3)
    configure(steam, store=True, answers={20: VND})
    meta = details_metadata(sync({"batch_size": 10}))
    assert (meta["succeeded"], meta["failed"], meta["invalid_samples"]) == (3, 0, [])
    assert query(
        database_url,
        "SELECT price_initial_cents, price_final_cents, currency, discount_percent,"
        " recommendations FROM app_details WHERE appid = 20",
    ) == [(3_000_000_000, 2_400_000_000, "VND", 20, 2_500_000_000)]


WIDENED = ("price_initial_cents", "price_final_cents", "recommendations")


def _column_types(conn: psycopg.Connection) -> dict[str, str]:
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'steam' AND table_name = 'app_details'"
        " AND column_name = ANY(%s)",
        (list(WIDENED),),
    ).fetchall()
    return dict(rows)


def _file_node(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT pg_relation_filenode('steam.app_details')").fetchone()[0]


def test_the_schema_widens_integer_price_columns_of_an_earlier_database(database_url) -> None:
    current = resources.files("sync_assets.steam").joinpath("schema.sql").read_text()
    earlier = re.sub(r"DO \$\$.*?\$\$;", "", current, flags=re.S)
    for column in WIDENED:
        earlier = earlier.replace(f"{column} bigint", f"{column} integer")
    db = PostgresResource(schema_name="steam", url_setting="STEAM_DATABASE_URL")
    db.apply_ddl(earlier)
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert _column_types(conn) == dict.fromkeys(WIDENED, "integer")
        conn.execute(
            "INSERT INTO steam.app_details (appid, name, price_initial_cents, price_final_cents,"
            " recommendations) VALUES (20, 'kept', 2147483647, 1999, 7)"
        )

        tables.apply_schema(db)
        assert _column_types(conn) == dict.fromkeys(WIDENED, "bigint")
        widened_node = _file_node(conn)
        tables.apply_schema(db)  # already bigint: nothing is altered (no table rewrite)
        assert _file_node(conn) == widened_node
        assert conn.execute(
            "SELECT name, price_initial_cents, price_final_cents, recommendations"
            " FROM steam.app_details"
        ).fetchall() == [("kept", 2147483647, 1999, 7)]
        assert conn.execute(
            "UPDATE steam.app_details SET price_initial_cents = 3000000000"
            " RETURNING price_initial_cents"
        ).fetchone() == (3_000_000_000,)


def _with_nul(appid: int, **changes: object) -> dict:
    return {str(appid): {"success": True, "data": {**sandbox.app_details(appid), **changes}}}


def test_an_app_the_database_refuses_does_not_block_the_crawl(steam, database_url) -> None:
    configure(steam, catalog_size=6)
    bad = {20: _with_nul(20, name="Bad\u0000Name"), 40: _with_nul(40, developers=["Studio\u0000X"])}
    configure(steam, store=True, answers=bad)
    everything = "SELECT * FROM app_details ORDER BY appid"
    status = (
        "SELECT appid, last_synced_at IS NOT NULL, consecutive_errors, last_error"
        " FROM app_sync_status WHERE appid IN (20, 40) ORDER BY appid"
    )

    first = sync({"batch_size": 10})
    assert first.success
    meta = details_metadata(first)
    assert (meta["processed"], meta["succeeded"], meta["failed"], meta["inserted"]) == (6, 4, 2, 4)
    stored = query(database_url, everything)
    assert [row[0] for row in stored] == [10, 30, 50, 60]
    rows = query(database_url, status)
    assert [row[:3] for row in rows] == [(20, False, 1), (40, False, 1)]
    assert all(row[3].startswith("not written: ") and "NUL" in row[3] for row in rows)
    [check] = first.get_asset_check_evaluations()
    assert check.passed

    second = sync({"batch_size": 10})
    assert second.success
    meta = details_metadata(second)
    assert (meta["failed"], meta["inserted"], meta["updated"], meta["unchanged"]) == (2, 0, 0, 4)
    assert query(database_url, everything) == stored
    assert [row[:3] for row in query(database_url, status)] == [(20, False, 2), (40, False, 2)]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"steam_appid": 209650}, Redirect(209650)),
        ({"steam_appid": "209650"}, Redirect(209650)),
        ({"steam_appid": 209660}, None),
        ({"steam_appid": "209660"}, None),
        ({"name": "no steam_appid"}, None),
        ({"steam_appid": None}, None),
        ([], None),
    ],
)
def test_redirect_is_read_from_steam_appid(data, expected) -> None:
    assert redirect_of(209660, data) == expected
