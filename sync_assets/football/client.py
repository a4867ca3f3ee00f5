"""The API-Football v3 resource: one download per endpoint, spooled to disk, errors-in-200 read.

API-Football answers most failures with HTTP 200 and a non-empty `errors` object in the v3
envelope. This client turns them into clear errors:

- `token` (missing or wrong key): `ProviderKeyError`, one line naming SPORTS_PROVIDER_API_KEY;
  no retry, since a retry cannot fix a key;
- `rateLimit` (per-minute limit): wait `rate_limit_wait_seconds` and ask again, a bounded number
  of times; `requests` (daily quota used up): `ProviderQuotaError`, no retry (it resets at
  midnight UTC);
- anything else (a bad parameter): `ProviderAnswerError` naming the field and the message.

HTTP 429 (with `Retry-After`), 499, 5xx and connection errors are retried by `core.http`. A body
that is not complete JSON is fetched again. Bodies stream to a temporary file and are read back
item by item (`iter_items`), so memory does not grow with the number of leagues.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import ijson
from pydantic import Field

from sync_assets.core.http import ApiClient, ApiError, CallStats, token_bucket
from sync_assets.core.settings import optional_setting, require_setting

DEFAULT_BASE_URL = "https://v3.football.api-sports.io"
KEY_SETTING = "SPORTS_PROVIDER_API_KEY"
KEY_HOW = "export your API-Football key (dashboard.api-football.com > Account > My Access)"
ENVELOPE_KEYS = ("get", "parameters", "errors", "results", "paging", "response")
MAX_PAGES = 500


class ProviderKeyError(RuntimeError):
    """The provider refused the API key."""


class ProviderQuotaError(RuntimeError):
    """The daily request quota is used up."""


class ProviderAnswerError(RuntimeError):
    """The provider answered with errors in the body (a bad request, or a broken answer)."""


class BrokenBodyError(ApiError):
    """HTTP 200, but the body is cut short or not JSON: worth fetching again."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


@dataclass
class Download:
    """One endpoint's answer on disk (every page), with what the envelope said."""

    endpoint: str
    pages: list[Path]
    results: int
    limits: dict[str, str] = field(default_factory=dict)


def errors_of(envelope_errors: Any) -> dict[str, str]:
    """The `errors` member as a dict (the service sends `[]` when there are none)."""
    if not envelope_errors:
        return {}
    if isinstance(envelope_errors, dict):
        return {str(k): str(v) for k, v in envelope_errors.items()}
    if isinstance(envelope_errors, list):
        return {str(i): str(v) for i, v in enumerate(envelope_errors)}
    return {"errors": str(envelope_errors)}


def read_header(path: Path) -> dict[str, Any]:
    """The envelope members other than `response`, stopping at `response` when they came first
    (the service's order), else reading past it without building it.

    Raises ProviderAnswerError when the file is not a JSON object at all.
    """
    header: dict[str, Any] = {}
    with path.open("rb") as handle:
        events = ijson.parse(handle, use_float=True)
        try:
            first = next(events, None)
            if first is None or first[1] != "start_map":
                raise ProviderAnswerError("the answer is not a JSON object")
            for prefix, event, value in events:
                if prefix != "" or event != "map_key":
                    continue
                if value == "response":
                    if all(k in header for k in ENVELOPE_KEYS[:-1]):
                        break
                    _skip_value(events)
                    continue
                header[value] = _build_value(events)
        except ijson.JSONError as exc:
            raise BrokenBodyError(f"the answer is not complete JSON ({exc})") from None
    return header


def _build_value(events: Iterator[tuple[str, str, Any]]) -> Any:
    builder = ijson.ObjectBuilder()
    depth = 0
    for _, event, value in events:
        builder.event(event, value)
        if event in ("start_map", "start_array"):
            depth += 1
        elif event in ("end_map", "end_array"):
            depth -= 1
        if depth == 0:
            break
    return builder.value


def _skip_value(events: Iterator[tuple[str, str, Any]]) -> None:
    depth = 0
    for _, event, _value in events:
        if event in ("start_map", "start_array"):
            depth += 1
        elif event in ("end_map", "end_array"):
            depth -= 1
        if depth == 0:
            break


def count_items(path: Path) -> int:
    """Parse the whole file (so a truncated body is caught) and count `response` items."""
    count = 0
    with path.open("rb") as handle:
        try:
            for _ in ijson.items(handle, "response.item", use_float=True):
                count += 1
        except ijson.JSONError as exc:
            raise BrokenBodyError(f"the answer is not complete JSON ({exc})") from None
    return count


def iter_items(download: Download) -> Iterator[Any]:
    """Every item of `response`, page after page, parsed as it is read."""
    for page in download.pages:
        with page.open("rb") as handle:
            yield from ijson.items(handle, "response.item", use_float=True)


class FootballApiResource(dg.ConfigurableResource):
    """API-Football v3. Base URL from `API_FOOTBALL_BASE_URL`, key from SPORTS_PROVIDER_API_KEY.

    Both are read from the environment when a run starts; the key is registered for redaction
    and sent only in the `x-apisports-key` header.
    """

    connect_timeout: float = Field(default=10.0, description="Seconds to connect.")
    read_timeout: float = Field(default=120.0, description="Seconds to wait for an answer.")
    max_retries: int = Field(
        default=5, description="Retries of HTTP 429 (Retry-After honoured), 499, 5xx, drops."
    )
    backoff_factor: float = Field(default=1.0, description="Exponential backoff base, seconds.")
    retry_after_cap: float = Field(default=120.0, description="Longest Retry-After honoured.")
    rate_limit_wait_seconds: float = Field(
        default=61.0, description="Wait after a per-minute rate-limit error in a 200 body."
    )
    rate_limit_attempts: int = Field(
        default=3, description="Answers with a rate-limit error before the run fails."
    )
    broken_body_attempts: int = Field(
        default=3, description="Downloads of a cut-short or non-JSON body before failing."
    )
    requests_per_minute: int = Field(
        default=10, description="Own request pace (the free plan allows 10 per minute)."
    )

    def base_url(self) -> str:
        return optional_setting("API_FOOTBALL_BASE_URL", DEFAULT_BASE_URL) or DEFAULT_BASE_URL

    def session(self, spool_dir: Path | None = None) -> FootballSession:
        """A client for one run; raises MissingSettingError when the key is not set."""
        key = require_setting(KEY_SETTING, KEY_HOW)
        client = ApiClient(
            self.base_url(),
            headers={"x-apisports-key": key, "Accept": "application/json"},
            secrets=(key,),
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_retries=self.max_retries,
            backoff_factor=self.backoff_factor,
            retry_after_cap=self.retry_after_cap,
            limiter=token_bucket(self.requests_per_minute, 60.0),
            pool_size=2,
        )
        return FootballSession(self, client, spool_dir)


class FootballSession:
    """Downloads for one run; the files live until `close()`."""

    def __init__(
        self, config: FootballApiResource, client: ApiClient, spool_dir: Path | None
    ) -> None:
        self.config = config
        self.client = client
        self._tmp = tempfile.TemporaryDirectory(prefix="football-", dir=spool_dir)
        self.dir = Path(self._tmp.name)
        self.rate_limit_waits = 0
        self.refetched_bodies = 0
        self.limits: dict[str, str] = {}
        self.warnings: list[str] = []

    @property
    def stats(self) -> CallStats:
        return self.client.stats

    def __enter__(self) -> FootballSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()
        self._tmp.cleanup()

    def download(self, endpoint: str, params: dict[str, Any] | None = None) -> Download:
        """Every page of `/endpoint`, checked: complete JSON, no errors, the endpoint asked."""
        pages: list[Path] = []
        results = 0
        page = 1
        while True:
            query = dict(params or {})
            if page > 1:
                query["page"] = page
            path, header, count = self._fetch_page(endpoint, query, len(pages))
            declared = header.get("results")
            if isinstance(declared, int) and declared != count:
                self.warnings.append(
                    f"/{endpoint} page {page}: `results` says {declared}, the answer holds {count}"
                )
            pages.append(path)
            results += count
            paging = header.get("paging") or {}
            total = paging.get("total") if isinstance(paging, dict) else None
            if not isinstance(total, int | float) or page >= min(int(total), MAX_PAGES):
                break
            page += 1
        if results == 0 and endpoint == "leagues" and not params:
            # API-Football always lists its leagues; an empty list is an outage answer.
            raise ProviderAnswerError("/leagues answered no leagues at all; nothing was written")
        return Download(endpoint, pages, results, dict(self.limits))

    def _fetch_page(
        self, endpoint: str, query: dict[str, Any], number: int
    ) -> tuple[Path, dict[str, Any], int]:
        rate_limited = broken = 0
        while True:
            path = self.dir / f"{endpoint}-{number}.json"
            try:
                self._spool(endpoint, query, path)
                header = read_header(path)
                self._check_envelope(endpoint, header)
                return path, header, count_items(path)
            except _RateLimited as exc:
                rate_limited += 1
                if rate_limited >= self.config.rate_limit_attempts:
                    raise ProviderAnswerError(
                        f"/{endpoint}: still over the per-minute rate limit after "
                        f"{rate_limited} waits of {self.config.rate_limit_wait_seconds:g}s: {exc}"
                    ) from None
                self.rate_limit_waits += 1
                self.stats.count_retry(self.config.rate_limit_wait_seconds)
                time.sleep(self.config.rate_limit_wait_seconds)
            except BrokenBodyError as exc:
                broken += 1
                if broken >= self.config.broken_body_attempts:
                    raise ApiError(f"/{endpoint}: {exc} ({broken} attempts)") from None
                self.refetched_bodies += 1
                self.stats.count_retry()
                time.sleep(min(30.0, self.config.backoff_factor * 2**broken))

    def _spool(self, endpoint: str, query: dict[str, Any], path: Path) -> None:
        response = self.client.request("GET", f"/{endpoint}", params=query or None, stream=True)
        with response:
            for name in (
                "x-ratelimit-requests-limit",
                "x-ratelimit-requests-remaining",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
            ):
                if name in response.headers:
                    self.limits[name] = response.headers[name]
            if response.status_code >= 400:
                raise ApiError(
                    f"GET /{endpoint} answered HTTP {response.status_code} after "
                    f"{self.stats.retries} retries",
                    status=response.status_code,
                    retryable=False,
                )
            first = True
            failure: str | None = None
            try:
                with path.open("wb") as out:
                    for chunk in response.iter_content(chunk_size=1 << 16):
                        if first and chunk.startswith(b"\xef\xbb\xbf"):
                            chunk = chunk[3:]  # some answers start with a UTF-8 byte-order mark
                        first = False
                        out.write(chunk)
            except Exception as exc:  # a connection dropped mid-body
                failure = f"GET /{endpoint}: the body broke off ({type(exc).__name__})"
            if failure:
                raise BrokenBodyError(failure)

    def _check_envelope(self, endpoint: str, header: dict[str, Any]) -> None:
        missing = [k for k in ENVELOPE_KEYS[:-1] if k not in header]
        if missing:
            raise ProviderAnswerError(
                f"/{endpoint}: the answer is not an API-Football v3 envelope (no {missing})"
            )
        errors = errors_of(header.get("errors"))
        if "token" in errors:
            raise ProviderKeyError(
                f"API-Football refused the key in {KEY_SETTING} ({errors['token'].split('.')[0]});"
                f" set {KEY_SETTING} to a valid key"
            )
        if "requests" in errors:
            raise ProviderQuotaError(
                f"API-Football daily request quota used up for the key in {KEY_SETTING}: "
                f"{errors['requests']}"
            )
        if "rateLimit" in errors:
            raise _RateLimited(errors["rateLimit"])
        if errors:
            detail = "; ".join(f"{k}: {v}" for k, v in errors.items())
            raise ProviderAnswerError(f"/{endpoint}: API-Football answered errors: {detail}")
        if header.get("get") != endpoint:
            raise ProviderAnswerError(
                f"/{endpoint}: the answer is for {json.dumps(header.get('get'))}, not {endpoint}"
            )


class _RateLimited(Exception):
    """errors.rateLimit in a 200 body."""
