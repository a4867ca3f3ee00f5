"""HTTP client base for provider APIs: timeouts, retries, a shared token bucket, redaction.

Retries are urllib3's `Retry` (exponential backoff with jitter, `Retry-After` in seconds or as
an HTTP date); the subclass here caps the hint, ignores values <= 0 and counts retries. The rate
limit is pyrate-limiter's token bucket, one per client and shared by every thread using it.

With SYNC_ASSETS_RATE_LIMIT_URL set (a redis:// URL), a bucket given a `shared_as` name keeps
its state in Redis instead (pyrate-limiter's RedisStateStore: the same TokenBucket, its few
numbers updated by one atomic Lua call per request), so every run in every worker and on every
machine draws from one bucket per provider and key. Redis rather than pyrate-limiter's
PostgresBucket: that one is a log (a row per request, trimmed later), takes an EXCLUSIVE table
lock with NOWAIT (contention becomes refusals and extra waits) and asks the server for the time
on every call; the Redis store is constant-size, expires on its own, and the Redis is there
already when runs go to Celery workers.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from pyrate_limiter import Duration, Limiter, Rate, StateBucket, TokenBucket
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from sync_assets.core.redaction import redact, register_secret
from sync_assets.core.settings import optional_setting

RATE_LIMIT_SETTING = "SYNC_ASSETS_RATE_LIMIT_URL"

# 520-524 are Cloudflare's own answers when the origin behind it failed or timed out (providers
# such as API-Football and Torn sit behind it): as passing as a 502 or 504.
RETRY_STATUSES = frozenset({429, 499, 500, 502, 503, 504, 520, 521, 522, 523, 524})


class ApiError(RuntimeError):
    """A provider call failed; the message is already redacted."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False):
        super().__init__(redact(message))
        self.status = status
        self.retryable = retryable


@dataclass
class CallStats:
    """Counters shared by every thread of one client."""

    requests: int = 0
    retries: int = 0
    retry_waits: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_request(self) -> None:
        with self._lock:
            self.requests += 1

    def count_retry(self, waited: float | None = None) -> None:
        with self._lock:
            self.retries += 1
            if waited is not None:
                self.retry_waits.append(waited)


class CappedRetry(Retry):
    """urllib3 Retry that caps `Retry-After`, treats <= 0 as no hint and counts retries."""

    retry_after_cap: float = 60.0
    stats: CallStats | None = None
    limiter: Limiter | None = None

    def new(self, **kw: Any) -> CappedRetry:
        fresh = super().new(**kw)
        fresh.retry_after_cap = self.retry_after_cap
        fresh.stats = self.stats
        fresh.limiter = self.limiter
        return fresh

    def parse_retry_after(self, retry_after: str) -> float:
        try:
            seconds = float(retry_after.strip())
        except ValueError:
            try:
                seconds = super().parse_retry_after(retry_after)
            except Exception:
                return 0.0
        if seconds <= 0:
            return 0.0
        return min(seconds, self.retry_after_cap)

    def increment(self, *args: Any, **kwargs: Any) -> Retry:
        result = super().increment(*args, **kwargs)
        if self.stats is not None:
            self.stats.count_retry()
        return result

    def sleep(self, response: Any = None) -> None:
        started = time.monotonic()
        super().sleep(response)
        if self.stats is not None:
            with self.stats._lock:
                self.stats.retry_waits.append(time.monotonic() - started)
        if self.limiter is not None:
            # A retry is a request too: it waits for the shared token bucket like any other.
            acquire(self.limiter)


class SharedRateLimitError(RuntimeError):
    """The shared rate limit's Redis could not be reached."""


def acquire(limiter: Limiter) -> None:
    """Wait for a token; a shared bucket whose Redis is unreachable fails naming the setting."""
    try:
        limiter.try_acquire("requests", blocking=True)
    except Exception as exc:
        if type(exc).__module__.startswith("redis"):
            raise SharedRateLimitError(
                f"the shared rate limit's Redis ({RATE_LIMIT_SETTING}) is unreachable: "
                f"{type(exc).__name__}: {redact(str(exc))}"
            ) from None
        raise


def key_fingerprint(secret: str) -> str:
    """A short, non-reversible name for an API key (a shared bucket per key, never the key)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def token_bucket(
    requests_per_period: int,
    period_seconds: float,
    burst: int | None = None,
    *,
    shared_as: str | None = None,
) -> Limiter:
    """A token bucket admitting `requests_per_period` per `period_seconds`, shared by threads;
    with SYNC_ASSETS_RATE_LIMIT_URL set and a `shared_as` name (provider, key fingerprint), by
    every process using that name."""
    interval_ms = max(1, int(period_seconds * Duration.SECOND))
    rate = Rate(requests_per_period, interval_ms, burst=burst or requests_per_period)
    url = optional_setting(RATE_LIMIT_SETTING)
    if url and shared_as:
        import redis
        from pyrate_limiter import RedisStateStore

        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3)
        store = RedisStateStore(client, key=f"sync_assets:rate_limit:{shared_as}")
        return Limiter(StateBucket([rate], algorithm=TokenBucket(), store=store), buffer_ms=5)
    return Limiter(StateBucket([rate], algorithm=TokenBucket()), buffer_ms=5)


class ApiClient:
    """A `requests.Session` wrapper every provider client builds on."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        secrets: tuple[str | None, ...] = (),
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_retries: int = 5,
        backoff_factor: float = 0.5,
        backoff_max: float = 30.0,
        retry_after_cap: float = 60.0,
        limiter: Limiter | None = None,
        pool_size: int = 32,
        retry_statuses: frozenset[int] = RETRY_STATUSES,
    ) -> None:
        register_secret(*secrets)
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.limiter = limiter
        self.stats = CallStats()
        retry = CappedRetry(
            total=max_retries,
            connect=max_retries,
            read=max_retries,
            status=max_retries,
            other=0,
            allowed_methods=None,
            status_forcelist=retry_statuses,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            backoff_jitter=backoff_factor,
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        retry.retry_after_cap = retry_after_cap
        retry.stats = self.stats
        retry.limiter = limiter
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry, pool_connections=pool_size, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update(headers or {})

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send one request (after the rate limit admits it); errors come back redacted."""
        url = f"{self.base_url}/{path.lstrip('/')}"
        if self.limiter is not None:
            acquire(self.limiter)
        self.stats.count_request()
        failure: str | None = None
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            # Built outside the except block so no chained exception carries the raw URL.
            failure = f"{method} {path.split('?')[0]} failed: {type(exc).__name__}: {exc}"
        if failure is not None:
            raise ApiError(failure, retryable=True)
        return response

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> requests.Response:
        return self.request("GET", path, params=params)

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET and decode JSON; a non-2xx status or an unreadable body raises ApiError."""
        response = self.get(path, params)
        if response.status_code >= 400:
            raise ApiError(
                f"GET {path} answered HTTP {response.status_code} after "
                f"{self.stats.retries} retries",
                status=response.status_code,
                retryable=response.status_code in RETRY_STATUSES,
            )
        return decode_json(response, path)

    def close(self) -> None:
        self.session.close()


def decode_json(response: requests.Response, path: str) -> Any:
    """Decode a JSON body, tolerating a UTF-8 byte-order mark; a bad body raises ApiError."""
    text = response.content.decode("utf-8-sig", errors="replace")
    try:
        return json.loads(text)
    except ValueError as exc:
        reason = f"{exc}"
    raise ApiError(f"GET {path} returned a body that is not JSON ({reason})", retryable=True)
