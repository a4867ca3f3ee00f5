"""Where the catalog comes from: IStoreService/GetAppList/v1 paged with STEAM_API_KEY, else the
removed ISteamApps/GetAppList/v2, and what an operator reads when either cannot be used."""

from __future__ import annotations

import math

import pydantic
import pytest
import requests

from sync_assets.sandbox import steam as sandbox
from sync_assets.steam.client import SteamApiResource
from sync_assets_tests.conftest import create_database
from sync_assets_tests.processes import event_storage_text
from sync_assets_tests.steam.conftest import (
    catalog_metadata,
    configure,
    failure_message,
    query,
    sync,
)

STORE_LIST = sandbox.API_PREFIX + "/IStoreService/GetAppList/v1"
LEGACY_LIST = sandbox.API_PREFIX + "/ISteamApps/GetAppList/v2"
CATALOG = "SELECT appid, name, removed_from_catalog_at IS NULL FROM apps ORDER BY appid"
BAD_KEY = "0123456789ABCDEF0123456789ABCDEF"


def test_paged_store_list_gives_the_catalog_v2_gives(
    steam, database_url, server_url, monkeypatch
) -> None:
    extras = [{"appid": 15, "name": "Odd One"}, {"appid": 1245620, "name": "ELDEN RING"}]
    configure(steam, catalog_size=45, extra_apps=extras, removed=[40, 300])
    monkeypatch.delenv("STEAM_API_KEY")
    legacy = catalog_metadata(sync(details_asset=False))
    assert (legacy["app_list_source"], legacy["app_list_pages"]) == ("ISteamApps/GetAppList/v2", 1)
    from_v2 = query(database_url, CATALOG)

    paged_url = create_database(server_url)
    monkeypatch.setenv("DATABASE_URL", paged_url)
    monkeypatch.setenv("STEAM_API_KEY", sandbox.DEMO_API_KEY)
    steam.forget_requests()
    meta = catalog_metadata(sync(details_asset=False, api=SteamApiResource(page_size=7)))

    assert query(paged_url, CATALOG) == from_v2
    assert len(from_v2) == 45 - 2 + 2 and meta["apps_in_catalog"] == len(from_v2)
    pages = steam.recorded(STORE_LIST)
    assert meta["app_list_source"] == "IStoreService/GetAppList/v1"
    assert meta["app_list_pages"] == len(pages) == math.ceil(len(from_v2) / 7) == meta["requests"]
    assert [p["query"].get("last_appid") for p in pages[:3]] == [None, "70", "140"]
    for page in pages:
        assert page["query"]["max_results"] == "7" and page["query"]["key"] == sandbox.DEMO_API_KEY
        kinds = ("games", "dlc", "software", "videos", "hardware")
        assert all(page["query"][f"include_{kind}"] == "true" for kind in kinds)
    assert steam.recorded(LEGACY_LIST) == []


def test_without_a_key_a_removed_v2_fails_with_one_clear_line(steam, monkeypatch) -> None:
    monkeypatch.delenv("STEAM_API_KEY")
    configure(steam, v2_removed=True)
    result = sync({"batch_size": 5}, raise_on_error=False)

    assert not result.success
    message = failure_message(result)
    first = message.split(": ", 1)[1].strip()  # after the exception's class name
    assert "\n" not in first
    assert first.startswith("Valve removed ISteamApps/GetAppList in November 2025")
    assert "set STEAM_API_KEY to a Steam Web API key" in first
    assert "IStoreService/GetAppList/v1" in first
    # The details step is skipped, and the operator is told how to run it meanwhile.
    assert "materialize it alone" in first and "--select steam_app_details" in first
    assert result.asset_materializations_for_node("steam_app_details") == []
    assert "steam_app_details" not in {e.step_key for e in result.all_events}
    assert [r["status"] for r in steam.recorded(sandbox.API_PREFIX)] == [404]  # not retried


def test_the_same_sandbox_serves_v1_with_a_key_after_v2_is_gone(steam, database_url) -> None:
    configure(steam, v2_removed=True)
    result = sync({"batch_size": 5})
    assert catalog_metadata(result)["app_list_source"] == "IStoreService/GetAppList/v1"
    assert query(database_url, "SELECT count(*) FROM apps") == [(60,)]


def test_a_bad_key_fails_clearly_without_the_key(
    steam, database_url, pg_instance, monkeypatch
) -> None:
    monkeypatch.setenv("STEAM_API_KEY", BAD_KEY)
    result = sync(details_asset=False, raise_on_error=False, instance=pg_instance)

    assert not result.success
    message = failure_message(result)
    assert "IStoreService/GetAppList/v1 answered HTTP 403" in message
    assert "Steam refused the key in STEAM_API_KEY" in message
    assert [r["status"] for r in steam.recorded(sandbox.API_PREFIX)] == [403]  # not retried
    storage = event_storage_text(pg_instance.sync_assets_pg_url)
    assert "Steam refused the key" in storage
    for form in (BAD_KEY, BAD_KEY.lower()):
        assert form not in message and form not in storage
    assert query(database_url, "SELECT count(*) FROM apps") == [(0,)]


def test_the_sandbox_refuses_a_missing_key_401_and_a_wrong_one_403(steam) -> None:
    url = steam.url + STORE_LIST + "/"
    missing = requests.get(url, timeout=5)
    wrong = requests.get(url, params={"key": BAD_KEY}, timeout=5)
    right = requests.get(url, params={"key": sandbox.DEMO_API_KEY, "max_results": 50}, timeout=5)
    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 403, 200)
    assert "Retrying will not help" in missing.text and "Forbidden" in wrong.text
    body = right.json()["response"]
    assert (len(body["apps"]), body["have_more_results"], body["last_appid"]) == (50, True, 500)
    configure(steam, api_key="ANOTHERKEY0000000000000000000000")
    assert requests.get(url, params={"key": sandbox.DEMO_API_KEY}, timeout=5).status_code == 403


def test_a_cursor_that_does_not_move_stops_the_run(steam, database_url) -> None:
    stuck = {"response": {"apps": [{"appid": 10, "name": "x"}], "have_more_results": True}}
    stuck["response"]["last_appid"] = 10
    steam.faults.add(path=STORE_LIST, kind="body", body=stuck, count=-1)
    result = sync(details_asset=False, raise_on_error=False)
    assert not result.success
    assert "does not move past 10" in failure_message(result)
    assert len(steam.recorded(STORE_LIST)) == 2
    assert query(database_url, "SELECT count(*) FROM apps") == [(0,)]


@pytest.mark.parametrize("size", [0, 50_001])
def test_a_page_is_at_most_what_steam_allows(size) -> None:
    with pytest.raises(pydantic.ValidationError):
        SteamApiResource(page_size=size)
