"""The API-Football v3 resource: one download per endpoint, spooled to disk, errors-in-200 read.

API-Football answers most failures with HTTP 200 and a non-empty `errors` object in the v3
envelope. This client turns them into clear errors:

- `token` (missing or wrong key): `ProviderKeyError`, one line naming SPORTS_PROVIDER_API_KEY;
  no retry, since a retry cannot fix a key;
- `rateLimit` (per-minute limit): wait `rate_limit_wait_seconds` and ask again, a bounded number
  of times; `requests` (daily quota used up): `ProviderQuotaError`, no retry (it resets at
  midnight UTC);
- anything else (a bad parameter): `ProviderAnswerError` naming the field and the message.

HTTP 429 with `Retry-After`, 499, 5xx and connection errors are retried by `core.http`. A 429
without `Retry-After` (API-Football's per-minute limit: `{"rateLimit": ...}`, no header) is the
rate-limit error above, since urllib3's few-second backoff cannot outlast a minute. A body that is
not complete JSON is fetched again. Bodies stream to a temporary file and are read back item by
item (`iter_items`, `core.json_stream`), so memory does not grow with the number of leagues.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import dagster as dg
import ijson
from pydantic import Field

from sync_assets.core.http import (
    RETRY_STATUSES,
    ApiClient,
    ApiError,
    CallStats,
    key_fingerprint,
    token_bucket,
)
from sync_assets.core.json_stream import JsonStreamError, array_items
from sync_assets.core.settings import optional_setting, require_setting

DEFAULT_BASE_URL = "https://v3.football.api-sports.io"
# Dagster pool of every step calling API-Football: its quota is per key, not per run.
API_FOOTBALL_POOL = "api_football"
KEY_SETTING = "SPORTS_PROVIDER_API_KEY"
KEY_HOW = "export your API-Football key (dashboard.api-football.com > Account > My Access)"
ENVELOPE_KEYS = ("get", "parameters", "errors", "results", "paging", "response")
MAX_PAGES = 500
# The envelope before `response` is read with ijson. Its C backend (yajl) stops at integers
# beyond int64 and floats beyond a double; the pure Python one reads any JSON number
# (non-integers as Decimal), slowly, so only such pages use it.
EXACT_NUMBERS = ijson.get_backend("python")
ERROR_BODY_BYTES = 1 << 16


class ProviderKeyError(RuntimeError):
    """The provider refused the API key."""


class ProviderQuotaError(RuntimeError):
    """The daily request quota is used up."""


class ProviderAnswerError(RuntimeError):
    """The provider answered with errors in the body (a bad request, or a broken answer)."""


class BrokenBodyError(ApiError):
    """HTTP 200, but the body is cut short or not JSON: worth fetching again."""

    def __init__(self, message: str, endpoint: str | None = None) -> None:
        super().__init__(message, retryable=True)
        self.endpoint = endpoint


@dataclass
class Download:
    """One endpoint's answer on disk (every page), with what each page's envelope declared.

    The items are parsed once, as they are written (`iter_items`); a body that turns out not to
    be complete JSON raises BrokenBodyError there, inside the write's transaction, and is
    fetched again (`FootballSession.refetch`).
    """

    endpoint: str
    params: dict[str, Any]
    pages: list[Path]
    declared: list[int | None]
    limits: dict[str, str] = field(default_factory=dict)
    counted: list[int] = field(default_factory=list)

    @property
    def results(self) -> int | None:
        """The number of items the envelopes declare; None when a page declares none."""
        if any(d is None for d in self.declared):
            return None
        return sum(d for d in self.declared if d is not None)

    def count_warnings(self) -> list[str]:
        """Pages whose declared `results` differs from the items read (after `iter_items`)."""
        return [
            f"/{self.endpoint} page {number}: `results` says {declared}, the answer holds {held}"
            for number, (declared, held) in enumerate(
                zip(self.declared, self.counted, strict=False), start=1
            )
            if declared is not None and declared != held
        ]


def errors_of(envelope_errors: Any) -> dict[str, str]:
    """The `errors` member as a dict (the service sends `[]` when there are none)."""
    if not envelope_errors:
        return {}
    if isinstance(envelope_errors, dict):
        return {str(k): str(v) for k, v in envelope_errors.items()}
    if isinstance(envelope_errors, list):
        return {str(i): str(v) for i, v in enumerate(envelope_errors)}
    return {"errors": str(envelope_errors)}


def _events(handle: BinaryIO, exact: bool) -> Iterator[tuple[str, str, Any]]:
    return EXACT_NUMBERS.parse(handle) if exact else ijson.parse(handle, use_float=True)


def _parsed[T](read: Callable[[Path, bool], T], path: Path) -> tuple[T, bool]:
    """`read(path, exact)` with the fast parser, else with exact numbers when one overflowed.

    Returns the result and whether exact numbers were needed; raises BrokenBodyError when the
    file is not complete JSON.
    """
    exact = False
    while True:
        try:
            return read(path, exact), exact
        except ijson.JSONError as exc:
            if exact or "overflow" not in str(exc):
                raise BrokenBodyError(f"the answer is not complete JSON ({exc})") from None
            exact = True


def read_header(path: Path) -> dict[str, Any]:
    """The envelope members other than `response`, stopping at `response` when they came first
    (the service's order), else reading past it without building it.

    Raises ProviderAnswerError when the file is not a JSON object at all.
    """
    return _parsed(_read_header, path)[0]


def _read_header(path: Path, exact: bool) -> dict[str, Any]:
    header: dict[str, Any] = {}
    with path.open("rb") as handle:
        events = _events(handle, exact)
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


def iter_items(download: Download) -> Iterator[Any]:
    """Every item of `response`, page after page, parsed as it is read (and counted)."""
    for item, _text in iter_items_with_text(download):
        yield item


def iter_items_with_text(download: Download) -> Iterator[tuple[Any, str]]:
    """Every item of `response` with the JSON text it was read from, page after page, parsed
    as it is read (and counted). Raises BrokenBodyError when a page is not complete JSON."""
    download.counted = []
    for page in download.pages:
        given = 0
        with page.open("rb") as handle:
            try:
                for item in array_items(handle, "response"):
                    given += 1
                    yield item
            except JsonStreamError as exc:
                raise BrokenBodyError(
                    f"/{download.endpoint}: the answer is not complete JSON ({exc})",
                    download.endpoint,
                ) from None
        download.counted.append(given)


def refuse_empty(download: Download) -> None:
    """API-Football always lists its leagues: an empty full list is an outage answer."""
    if download.endpoint == "leagues" and not download.params:
        raise ProviderAnswerError("/leagues answered no leagues at all; nothing was written")


def page_total(value: Any) -> int | None:
    """`paging.total` as a page count; None when it is not a finite number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float | Decimal) and math.isfinite(value):
        return int(value)
    return None


class FootballApiResource(dg.ConfigurableResource):
    """API-Football v3. Base URL from `API_FOOTBALL_BASE_URL`, key from SPORTS_PROVIDER_API_KEY.

    Both are read from the environment when a run starts; the key is registered for redaction
    and sent only in the `x-apisports-key` header.
    """

    connect_timeout: float = Field(default=10.0, description="Seconds to connect.")
    read_timeout: float = Field(default=120.0, description="Seconds to wait for an answer.")
    max_retries: int = Field(
        default=5, description="Retries of HTTP 429 with Retry-After (honoured), 499, 5xx, drops."
    )
    backoff_factor: float = Field(default=1.0, description="Exponential backoff base, seconds.")
    retry_after_cap: float = Field(default=120.0, description="Longest Retry-After honoured.")
    rate_limit_wait_seconds: float = Field(
        default=61.0,
        description="Wait after a per-minute rate-limit answer (a 429 without Retry-After, or "
        "the error in a 200 body).",
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
            limiter=token_bucket(
                self.requests_per_minute, 60.0, shared_as=f"football:{key_fingerprint(key)}"
            ),
            pool_size=2,
            # A 429 with Retry-After is still retried by urllib3 (it honours the header for 429
            # whatever this list says); one without it is the per-minute limit, waited out here.
            retry_statuses=RETRY_STATUSES - {429},
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
        self.broken_bodies = 0
        self.limits: dict[str, str] = {}

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
        """Every page of `/endpoint`, its envelope checked: no errors, the endpoint asked."""
        pages: list[Path] = []
        declared: list[int | None] = []
        page = 1
        while True:
            query = dict(params or {})
            if page > 1:
                query["page"] = page
            path, header = self._fetch_page(endpoint, query, len(pages))
            pages.append(path)
            results = header.get("results")
            declared.append(results if isinstance(results, int) else None)
            paging = header.get("paging") or {}
            total = page_total(paging.get("total") if isinstance(paging, dict) else None)
            if total is None or page >= min(total, MAX_PAGES):
                break
            page += 1
        download = Download(endpoint, dict(params or {}), pages, declared, dict(self.limits))
        if download.results == 0:
            refuse_empty(download)
        return download

    def refetch(self, broken: Download, error: BrokenBodyError) -> Download:
        """`broken` downloaded again after its body turned out not to be complete JSON, within
        `broken_body_attempts`; raises ApiError once they are used up."""
        self.broken_bodies += 1
        if self.broken_bodies >= self.config.broken_body_attempts:
            raise ApiError(f"{error} ({self.broken_bodies} attempts)") from None
        self.refetched_bodies += 1
        self.stats.count_retry()
        time.sleep(min(30.0, self.config.backoff_factor * 2**self.broken_bodies))
        return self.download(broken.endpoint, broken.params)

    def _fetch_page(
        self, endpoint: str, query: dict[str, Any], number: int
    ) -> tuple[Path, dict[str, Any]]:
        rate_limited = broken = 0
        while True:
            path = self.dir / f"{endpoint}-{number}.json"
            try:
                self._spool(endpoint, query, path)
                header = read_header(path)
                self._check_envelope(endpoint, header)
                return path, header
            except _RateLimited as exc:
                rate_limited += 1
                if rate_limited >= self.config.rate_limit_attempts:
                    raise ProviderAnswerError(
                        f"/{endpoint}: still over the per-minute rate limit after {rate_limited} "
                        f"answers and {rate_limited - 1} waits of "
                        f"{self.config.rate_limit_wait_seconds:g}s: {exc}"
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
            if response.status_code == 429:
                raise _too_many_requests(endpoint, _head(response))
            if response.status_code >= 400:
                raise ApiError(
                    f"GET /{endpoint} answered HTTP {response.status_code} after "
                    f"{self.stats.retries} retries",
                    status=response.status_code,
                    retryable=response.status_code in RETRY_STATUSES,
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
    """The per-minute rate limit: errors.rateLimit in a 200 body, or a 429 without Retry-After."""


def _head(response: Any) -> bytes:
    """The first bytes of an error answer's body; empty when it cannot be read."""
    try:
        return response.raw.read(ERROR_BODY_BYTES, decode_content=True) or b""
    except Exception:  # a connection dropped: the status alone still says what happened
        return b""


def _too_many_requests(endpoint: str, body: bytes) -> Exception:
    """What a 429 means: the daily quota (no retry) or, by default, the per-minute limit."""
    try:
        answer = json.loads(body.decode("utf-8-sig", errors="replace"))
    except ValueError:
        answer = None
    said: dict[str, str] = {}
    if isinstance(answer, dict):
        said = errors_of(answer.get("errors"))
        for key in ("rateLimit", "requests", "message"):
            if isinstance(answer.get(key), str):
                said.setdefault(key, answer[key])
    if "requests" in said and "rateLimit" not in said:
        return ProviderQuotaError(
            f"API-Football daily request quota used up for the key in {KEY_SETTING}: "
            f"{said['requests']}"
        )
    return _RateLimited(
        said.get("rateLimit") or said.get("message") or f"GET /{endpoint} answered HTTP 429"
    )
