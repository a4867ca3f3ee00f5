"""The Steam app list: IStoreService/GetAppList/v1 with a key, paged; else ISteamApps/GetAppList/v2.

Valve removed ISteamApps/GetAppList (v2) in November 2025: api.steampowered.com answers HTTP 404
"Method 'GetAppList' not found in interface 'ISteamApps'". Its replacement,
IStoreService/GetAppList/v1, needs a Steam Web API key (`STEAM_API_KEY`) and pages: up to
`max_results` (at most 50,000) apps after `last_appid`, until an answer no longer says
`have_more_results: true`. It lists only games unless told otherwise, so every kind is asked for.
Without a key, v2 is still read (mirrors and the sandbox serve it). Every answer is parsed as its
body streams in, so memory stays flat however large the catalog.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import ijson
import requests

from sync_assets.core.http import ApiClient, ApiError

KEY_SETTING = "STEAM_API_KEY"
KEY_HOW = "a Steam Web API key from https://steamcommunity.com/dev/apikey"
STORE_APP_LIST_PATH = "/IStoreService/GetAppList/v1/"
LEGACY_APP_LIST_PATH = "/ISteamApps/GetAppList/v2/"
STORE_SOURCE = "IStoreService/GetAppList/v1"
LEGACY_SOURCE = "ISteamApps/GetAppList/v2"
MAX_PAGE_SIZE = 50_000
# v1 answers games only by default; v2 listed every kind, so ask for all five.
EVERY_KIND = {
    f"include_{kind}": "true" for kind in ("games", "dlc", "software", "videos", "hardware")
}
CHUNK_BYTES = 64 * 1024

REMOVED_V2 = (
    f"Valve removed ISteamApps/GetAppList in November 2025 (it answers HTTP 404): set "
    f"{KEY_SETTING} to {KEY_HOW} so the catalog reads {STORE_SOURCE}"
)


class AppListError(ApiError):
    """The app list cannot be read until an operator acts: retrying will not help."""


@dataclass
class AppListReport:
    """Where the list came from and how many answers (pages) it took."""

    source: str
    pages: int = 0


class AppListReader:
    """Iterates every entry of the app list, page after page; close() when done."""

    def __init__(self, client: ApiClient, key: str | None, page_size: int) -> None:
        self.client = client
        self.key = key
        self.page_size = page_size
        self.report = AppListReport(STORE_SOURCE if key else LEGACY_SOURCE)

    def __iter__(self) -> Iterator[Any]:
        if self.key:
            yield from self._store_pages()
        else:
            yield from self._legacy_list()

    def close(self) -> None:
        self.client.close()

    def _legacy_list(self) -> Iterator[Any]:
        found: dict[str, Any] = {}
        yield from self._stream(LEGACY_APP_LIST_PATH, None, "applist.apps.item", (), found)

    def _store_pages(self) -> Iterator[Any]:
        cursor: int | None = None
        while True:
            params: dict[str, Any] = {
                "key": self.key,
                **EVERY_KIND,
                "max_results": self.page_size,
            }
            if cursor is not None:
                params["last_appid"] = cursor
            found: dict[str, Any] = {}
            yield from self._stream(
                STORE_APP_LIST_PATH,
                params,
                "response.apps.item",
                ("response.have_more_results", "response.last_appid"),
                found,
            )
            if found.get("response.have_more_results") is not True:
                return
            following = _as_appid(found.get("response.last_appid"))
            following = following if following is not None else found.get("max_appid")
            if following is None or (cursor is not None and following <= cursor):
                raise ApiError(
                    f"GET {STORE_APP_LIST_PATH} says it has more results but its last_appid "
                    f"({following}) does not move past {cursor}; stopped rather than loop"
                )
            cursor = following

    def _stream(
        self,
        path: str,
        params: dict[str, Any] | None,
        items: str,
        scalars: tuple[str, ...],
        found: dict[str, Any],
    ) -> Iterator[Any]:
        """Yield each entry under `items` as the body arrives; put `scalars` values in `found`."""
        response = self.client.request("GET", path, params=params, stream=True)
        with response:
            _raise_for_status(path, response.status_code)
            entries = ijson.sendable_list()
            values = {name: ijson.sendable_list() for name in scalars}
            parsers = [ijson.items_coro(entries, items, use_float=True)]
            parsers += [ijson.items_coro(values[name], name) for name in scalars]
            try:
                for chunk in _chunks(response, path):
                    for parser in parsers:
                        parser.send(chunk)
                    yield from _drain(entries, found)
                for parser in parsers:
                    parser.close()
                yield from _drain(entries, found)
            except ijson.JSONError as exc:
                reason = f"{exc}".splitlines()[0][:200]
                raise ApiError(f"GET {path}: the app list is not valid JSON ({reason})") from None
        found.update({name: value[-1] for name, value in values.items() if value})
        self.report.pages += 1


def _drain(entries: list[Any], found: dict[str, Any]) -> Iterator[Any]:
    """Hand on the entries parsed so far, noting the highest appid (a fallback cursor)."""
    for entry in entries:
        appid = _as_appid(entry.get("appid") if isinstance(entry, dict) else None)
        if appid is not None:
            found["max_appid"] = max(appid, found.get("max_appid", appid))
        yield entry
    del entries[:]


def _chunks(response: requests.Response, path: str) -> Iterator[bytes]:
    """The body in pieces; a connection lost half-way raises ApiError (no URL in it)."""
    failure: str | None = None
    try:
        yield from response.iter_content(CHUNK_BYTES)
    except requests.RequestException as exc:
        failure = f"GET {path}: the answer broke off ({type(exc).__name__})"
    if failure is not None:
        raise ApiError(failure, retryable=True)


def _raise_for_status(path: str, status: int) -> None:
    if status < 400:
        return
    if path == LEGACY_APP_LIST_PATH and status == 404:
        raise AppListError(REMOVED_V2, status=status)
    if path == STORE_APP_LIST_PATH and status in (401, 403):
        raise AppListError(
            f"{STORE_SOURCE} answered HTTP {status}: Steam refused the key in {KEY_SETTING}; "
            f"set it to a valid key ({KEY_HOW}; a revoked or mistyped key is refused)",
            status=status,
        )
    raise ApiError(f"GET {path} answered HTTP {status}", status=status, retryable=status >= 500)


def _as_appid(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return int(value)
    except ValueError:
        return None
