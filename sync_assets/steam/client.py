"""Resources for the Steam Web API (the app list) and the Steam store (per-app details)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import dagster as dg
from pydantic import Field

from sync_assets.core.http import ApiClient, ApiError, CallStats, decode_json, token_bucket
from sync_assets.core.settings import optional_setting
from sync_assets.steam.app_list import KEY_SETTING, MAX_PAGE_SIZE, AppListReader

APP_DETAILS_PATH = "/api/appdetails"
# Dagster pools of the steps calling each Steam service: their limits are per key or address.
STEAM_WEB_API_POOL = "steam_web_api"
STEAM_STORE_POOL = "steam_store"
DEFAULT_RATE_LIMIT = "200/300"  # the store's observed limit: 200 requests per 5 minutes


class StoreBlockedError(RuntimeError):
    """The store refuses us (403, or 429 that outlasted every retry): stop the batch."""


@dataclass(frozen=True)
class StoreAnswer:
    """One appdetails answer: `data` of an available app, or why it is not available."""

    appid: int
    data: Any = None
    not_available: str | None = None


def parse_rate_limit(text: str) -> tuple[int, float]:
    """ "200/300" -> (200 requests, 300 seconds)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*", text or "")
    if not match or int(match[1]) < 1 or float(match[2]) <= 0:
        raise ValueError(
            f"STEAM_STORE_RATE_LIMIT must look like '200/300' (requests/seconds), got {text!r}"
        )
    return int(match[1]), float(match[2])


def _short_reason(exc: ApiError) -> str:
    """The failure without host, query string or library detail (no URL ever leaves)."""
    if exc.status is not None:
        return f"HTTP {exc.status}"
    text = str(exc).lower()
    if "timed out" in text or "timeout" in text:
        return "Timeout (no answer within the read timeout)"
    match = re.search(r"failed: (\w+)", str(exc))
    return match.group(1) if match else "request failed"


class SteamApiResource(dg.ConfigurableResource):
    """The Steam Web API; base URL from `STEAM_API_BASE_URL`, key from `STEAM_API_KEY`.

    With a key the app list comes from IStoreService/GetAppList/v1, else from the removed
    ISteamApps/GetAppList/v2 (still served by mirrors); see `sync_assets.steam.app_list`.
    """

    read_timeout: float = 120.0
    max_retries: int = 4
    backoff_factor: float = 0.5
    page_size: int = Field(
        default=MAX_PAGE_SIZE,
        ge=1,
        le=MAX_PAGE_SIZE,
        description="max_results: apps per IStoreService/GetAppList page (Steam allows 50,000)",
    )

    def base_url(self) -> str:
        return optional_setting("STEAM_API_BASE_URL", "https://api.steampowered.com") or ""

    def app_list(self) -> AppListReader:
        """A reader of the whole app list for one run; the key is registered for redaction."""
        key = optional_setting(KEY_SETTING)
        client = ApiClient(
            self.base_url(),
            # Registered before the first request: urllib3 logs URLs, and this key is in them.
            secrets=(key, key.lower(), key.upper()) if key else (),
            read_timeout=self.read_timeout,
            max_retries=self.max_retries,
            backoff_factor=self.backoff_factor,
        )
        return AppListReader(client, key, self.page_size)


class SteamStoreResource(dg.ConfigurableResource):
    """The Steam store's appdetails; base URL from `STEAM_STORE_BASE_URL`.

    The rate limit comes from the run config, else `STEAM_STORE_RATE_LIMIT` ("200/300").
    """

    country: str = Field(default="us", description="cc: the store region (prices, currency)")
    language: str = Field(default="english", description="l: the language of texts and dates")
    read_timeout: float = 20.0
    max_retries: int = 4
    backoff_factor: float = 1.0
    retry_after_cap: float = 120.0

    def base_url(self) -> str:
        return optional_setting("STEAM_STORE_BASE_URL", "https://store.steampowered.com") or ""

    def default_rate_limit(self) -> tuple[int, float]:
        return parse_rate_limit(optional_setting("STEAM_STORE_RATE_LIMIT", DEFAULT_RATE_LIMIT))

    def session(self, requests: int, seconds: float, concurrency: int) -> StoreSession:
        """A client for one run: a token bucket of `requests` per `seconds`, shared by threads."""
        client = ApiClient(
            self.base_url(),
            read_timeout=self.read_timeout,
            max_retries=self.max_retries,
            backoff_factor=self.backoff_factor,
            retry_after_cap=self.retry_after_cap,
            # A burst of 2 keeps the pace even: with 1, the limiter's few-ms re-check delay
            # adds up request after request and costs a third of the allowed rate.
            limiter=token_bucket(
                requests, seconds, burst=min(2, requests), shared_as="steam-store"
            ),
            pool_size=max(4, concurrency),
        )
        return StoreSession(client, {"cc": self.country, "l": self.language})


class StoreSession:
    """Fetches one app at a time; safe to share between threads."""

    def __init__(self, client: ApiClient, params: dict[str, str]) -> None:
        self.client = client
        self.params = params

    @property
    def stats(self) -> CallStats:
        return self.client.stats

    def app_details(self, appid: int) -> StoreAnswer:
        """The store's answer for one app; raises StoreBlockedError or ApiError (redacted)."""
        try:
            response = self.client.get(APP_DETAILS_PATH, {"appids": appid, **self.params})
        except ApiError as exc:
            raise ApiError(f"appdetails {appid}: {_short_reason(exc)} after retries") from None
        status = response.status_code
        if status == 403:
            raise StoreBlockedError(f"the store answered HTTP 403 (blocked) at app {appid}")
        if status == 429:
            raise StoreBlockedError(f"the store kept answering HTTP 429 at app {appid}")
        if status == 404:
            return StoreAnswer(appid, not_available="not found (HTTP 404)")
        if status >= 400:
            raise ApiError(f"appdetails {appid}: HTTP {status} after retries", status=status)
        payload = decode_json(response, APP_DETAILS_PATH)
        if not isinstance(payload, dict):
            raise ApiError(f"appdetails {appid}: the answer is {type(payload).__name__}")
        entry = payload.get(str(appid))
        if not isinstance(entry, dict):
            raise ApiError(f"appdetails {appid}: the answer has no entry for the app")
        if entry.get("success") is not True:
            return StoreAnswer(appid, not_available="not available (success: false)")
        return StoreAnswer(appid, data=entry.get("data"))

    def close(self) -> None:
        self.client.close()
