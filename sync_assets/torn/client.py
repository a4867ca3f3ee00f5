"""The Torn API resource: one user's basic profile per call, with the user's own key.

The Torn API answers errors inside HTTP 200 bodies, `{"error": {"code": N, "error": "..."}}`.
What each code means for a sync (https://www.torn.com/api.html, "Error codes"):

- the key itself is unusable (empty, incorrect, owner in federal jail, owner inactive, access
  level too low, paused): that user fails at once; retrying cannot help;
- our IP is banned for a while (8) or the API is disabled (9): every key is refused alike, so
  `TornUnavailableError` is raised and the asset stops the batch (no user is retried);
- the API is busy (too many requests, key read error, temporary error, backend error, closed
  temporarily): retried with exponential backoff and jitter, then that user fails;
- anything else (wrong fields, daily read limit, ...): that user fails at once.

HTTP-level trouble (429, 5xx, connection errors, read timeouts) is retried by the core client's
urllib3 `Retry`. The key travels in the query string as Torn documents; every key is registered
with `register_secret` before it is used, so no log line, retry warning or exception shows it.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import requests
from pydantic import Field

from sync_assets.core.http import ApiClient, ApiError, CallStats, decode_json, token_bucket
from sync_assets.core.redaction import register_secret
from sync_assets.core.settings import optional_setting

USER_PATH = "/user/"
DEFAULT_BASE_URL = "https://api.torn.com"
# Dagster pool of every step calling the Torn API.
TORN_API_POOL = "torn_api"

# Codes whose key can never work as it is: fail the user without retrying.
KEY_ERRORS: dict[int, str] = {
    1: "key_empty",
    2: "key_incorrect",
    10: "key_owner_in_federal_jail",
    13: "key_disabled_owner_inactive",
    16: "key_access_level_too_low",
    18: "key_paused",
}
# Codes that refuse every key at once: retrying one user after another only prolongs the ban.
STOP_ERRORS: dict[int, str] = {
    8: "ip_blocked",
    9: "api_disabled",
}
# Codes that say "not now" for one key: retry with backoff, then fail the user.
RETRYABLE_ERRORS: dict[int, str] = {
    5: "too_many_requests",
    12: "key_read_error",
    15: "temporary_error",
    17: "backend_error",
    24: "closed_temporarily",
}
OTHER_ERRORS: dict[int, str] = {
    0: "unknown_error",
    3: "wrong_type",
    4: "wrong_fields",
    6: "incorrect_id",
    7: "incorrect_id_entity_relation",
    11: "key_change_error",
    14: "daily_read_limit",
}


class UserFetchError(Exception):
    """One user's profile could not be fetched; `reason` is a short category, never a key."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class TornUnavailableError(Exception):
    """Torn refuses every key for now (IP banned, API disabled): no other user can succeed."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


FAIL, RETRY, STOP = "fail", "retry", "stop"


def classify_error(code: Any) -> tuple[str, str]:
    """(reason, handling) for a Torn error code; handling is FAIL, RETRY or STOP."""
    try:
        number = int(code)
    except (TypeError, ValueError):
        return "unknown_error", FAIL
    if number in KEY_ERRORS:
        return KEY_ERRORS[number], FAIL
    if number in STOP_ERRORS:
        return STOP_ERRORS[number], STOP
    if number in RETRYABLE_ERRORS:
        return RETRYABLE_ERRORS[number], RETRY
    return OTHER_ERRORS.get(number, f"api_error_{number}"), FAIL


@dataclass
class TornStats:
    """Counters of one session: HTTP attempts (`CallStats`) plus error-code retries."""

    http: CallStats
    error_retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_error_retry(self) -> None:
        with self._lock:
            self.error_retries += 1


class TornApiResource(dg.ConfigurableResource):
    """The Torn API; base URL from `TORN_API_BASE_URL` (default https://api.torn.com)."""

    connect_timeout: float = Field(default=5.0, description="Seconds to connect.")
    read_timeout: float = Field(default=10.0, description="Seconds to wait for an answer.")
    http_retries: int = Field(
        default=2, ge=0, description="Retries of a 429/5xx/timeout/connection error."
    )
    error_retries: int = Field(
        default=3, ge=0, description="Retries of a retryable Torn error code (5, 12, 15, 17, 24)."
    )
    backoff_seconds: float = Field(
        default=2.0, ge=0, description="First backoff of a retryable error; doubles each time."
    )
    backoff_max_seconds: float = Field(default=30.0, ge=0, description="Longest single backoff.")
    comment: str = Field(
        default="sync_assets", description="Torn's `comment` parameter: names us in key logs."
    )

    def base_url(self) -> str:
        return optional_setting("TORN_API_BASE_URL", DEFAULT_BASE_URL) or DEFAULT_BASE_URL

    def session(self, requests_per_second: float, concurrency: int) -> TornSession:
        """A client for one run: every thread shares one token bucket and one pool."""
        per_second = max(1, round(requests_per_second))
        client = ApiClient(
            self.base_url(),
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_retries=self.http_retries,
            backoff_factor=0.5,
            backoff_max=self.backoff_max_seconds,
            retry_after_cap=self.backoff_max_seconds,
            limiter=token_bucket(
                per_second, 1.0, burst=min(per_second, max(2, concurrency)), shared_as="torn"
            ),
            pool_size=max(4, concurrency),
        )
        return TornSession(client, self)


@dataclass(frozen=True)
class Profile:
    """The fields of `selections=basic` we keep, their types checked by `parse_profile`."""

    player_id: int
    name: str
    level: int | None
    gender: str | None
    status_state: str | None
    status_description: str | None


class TornSession:
    """Fetches one user's basic profile at a time; safe to share between threads."""

    def __init__(self, client: ApiClient, settings: TornApiResource) -> None:
        self.client = client
        self.settings = settings
        self.stats = TornStats(client.stats)

    def basic_profile(self, key: str) -> Profile:
        """`GET /user/?selections=basic&key=...`; raises UserFetchError or TornUnavailableError."""
        register_secret(key)  # idempotent: the caller registered it already, in a batch
        attempt = 0
        while True:
            payload = self._get(key)
            error = payload.get("error") if isinstance(payload, dict) else None
            if error is None:
                return parse_profile(payload)
            code = error.get("code") if isinstance(error, dict) else None
            text = str(error.get("error", "")) if isinstance(error, dict) else str(error)
            reason, handling = classify_error(code)
            message = f"Torn error {code} ({text[:100]})"
            if handling == STOP:
                raise TornUnavailableError(reason, f"{message}: every key is refused")
            if handling == FAIL or attempt >= self.settings.error_retries:
                if handling == RETRY:
                    message += f" after {attempt} retries"
                raise UserFetchError(reason, message)
            attempt += 1
            self.stats.count_error_retry()
            time.sleep(self._backoff(attempt))

    def _backoff(self, attempt: int) -> float:
        base = self.settings.backoff_seconds * 2 ** (attempt - 1)
        return min(self.settings.backoff_max_seconds, base + random.uniform(0, base / 2))

    def _get(self, key: str) -> Any:
        params = {"selections": "basic", "key": key}
        if self.settings.comment:
            params["comment"] = self.settings.comment
        try:
            response = self.client.get(USER_PATH, params)
        except ApiError as exc:
            text = str(exc)
            if "timed out" in text.lower() or "timeout" in text.lower():
                raise UserFetchError(
                    "timeout",
                    f"no answer within {self.settings.read_timeout:g} s "
                    f"(after {self.settings.http_retries} retries)",
                ) from None
            raise UserFetchError("connection_error", _exception_name(text)) from None
        if response.status_code >= 400:
            retries = _retries_made(response)
            after = f" after {retries} retries" if retries else ""
            raise UserFetchError("http_error", f"HTTP {response.status_code}{after}")
        try:
            return decode_json(response, USER_PATH)
        except ApiError:
            raise UserFetchError("malformed_response", "the answer is not JSON") from None

    def close(self) -> None:
        self.client.close()


def _retries_made(response: requests.Response) -> int:
    """Retries urllib3 made for this one call (the shared `CallStats` counts every thread's)."""
    retry = getattr(response.raw, "retries", None)
    return len(getattr(retry, "history", None) or ())


def _exception_name(text: str) -> str:
    """`ConnectionError` out of "GET /user/ failed: ConnectionError: ..." (no URL, no detail)."""
    marker = " failed: "
    if marker in text:
        return text.split(marker, 1)[1].split(":", 1)[0][:60] or "request failed"
    return "request failed"


def parse_profile(payload: Any) -> Profile:
    """The kept fields of a basic answer; a non-object body or a mistyped field fails the user."""
    from sync_assets.torn.schemas import profile_problem  # loads pandera: only when a run needs it

    if not isinstance(payload, dict):
        raise UserFetchError(
            "malformed_response", f"the answer is {type(payload).__name__}, not an object"
        )
    status = payload.get("status") if isinstance(payload.get("status"), dict) else {}
    profile = Profile(
        player_id=payload.get("player_id"),
        name=payload.get("name"),
        level=payload.get("level"),
        gender=payload.get("gender"),
        status_state=status.get("state"),
        status_description=status.get("description"),
    )
    problem = profile_problem(vars(profile))
    if problem is not None:
        raise UserFetchError("invalid_profile", problem)
    return profile
