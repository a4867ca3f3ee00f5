"""The stats resources: the club database (stats schema + the app's tables) and the app's
cache-revalidation endpoint."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from pydantic import Field

from sync_assets.core.http import ApiClient, ApiError, decode_json
from sync_assets.core.postgres import PostgresResource
from sync_assets.core.redaction import redact, register_secret
from sync_assets.core.settings import optional_setting, require_setting

REVALIDATE_PATH = "/api/internal/cache/invalidate"
KEY_HOW = "export INTERNAL_API_KEY=<the app's internal API key> (needed with NEXT_PUBLIC_APP_URL)"


class StatsDatabase(PostgresResource):
    """The stats schema, next to the club app's own tables in the same database.

    The app's tables are read from `app_schema`, else `STATS_APP_SCHEMA`, else `public`.
    """

    app_schema: str | None = Field(
        default=None, description="Schema of the app's tables (default: STATS_APP_SCHEMA/public)"
    )

    refresh_connections: int = Field(
        default=2,
        ge=1,
        description="Tables computed and written back at once, each over its own connection; "
        "about the number of cores here",
    )

    duckdb_memory_limit: str = Field(
        default="1GB",
        description="Memory DuckDB may hold while computing the tables; beyond it, it spills "
        "to disk under .sync_assets/duckdb-spill",
    )

    def app_schema_name(self) -> str:
        return self.app_schema or optional_setting("STATS_APP_SCHEMA", "public") or "public"


@dataclass
class Revalidation:
    """The outcome of sending cache tags to the app."""

    status: str  # sent | skipped | failed
    tags: list[str]
    attempts: int = 0
    error: str | None = None
    waits: list[float] = field(default_factory=list)

    def as_metadata(self) -> dict[str, Any]:
        return {
            "revalidation": self.status,
            "revalidation_tags": ", ".join(self.tags),
            "revalidation_attempts": self.attempts,
            "revalidation_error": self.error or "",
        }


class ClubAppResource(dg.ConfigurableResource):
    """The club app's internal cache endpoint: `NEXT_PUBLIC_APP_URL` + `revalidate_path`,
    authenticated with `Authorization: Bearer $INTERNAL_API_KEY` (both read at run time)."""

    revalidate_path: str = Field(default=REVALIDATE_PATH, description="Path of the endpoint")
    max_retries: int = Field(default=3, ge=0, description="Retries after the first attempt")
    backoff_seconds: float = Field(default=1.0, ge=0, description="First retry wait, doubling")
    timeout_seconds: float = Field(default=10.0, gt=0, description="Connect and read timeout")

    def app_url(self) -> str | None:
        return optional_setting("NEXT_PUBLIC_APP_URL")

    def check_settings(self, log: Any = None) -> None:
        """With an app URL the key is required: fail at the start with one line if missing.
        Without one, say once that no cache tags will be sent."""
        if self.app_url():
            register_secret(require_setting("INTERNAL_API_KEY", KEY_HOW))
        elif log is not None:
            log.info("NEXT_PUBLIC_APP_URL is not set: cache tags will not be sent")

    def revalidate(self, tags: list[str], request_id: str, log: Any = None) -> Revalidation:
        """POST the tags; retry failures with backoff; never raise (the data is committed)."""
        base = self.app_url()
        if not base:  # the step said so once (`check_settings`)
            return Revalidation("skipped", tags)
        key = require_setting("INTERNAL_API_KEY", KEY_HOW)
        client = ApiClient(
            base,
            headers={"Authorization": f"Bearer {key}"},
            secrets=(key,),
            connect_timeout=self.timeout_seconds,
            read_timeout=self.timeout_seconds,
            max_retries=0,
        )
        outcome = Revalidation("failed", tags)
        body = {"tags": tags, "source": "sync_assets", "requestId": request_id}
        try:
            for attempt in range(1, self.max_retries + 2):
                outcome.attempts = attempt
                error = self._attempt(client, body)
                if error is None:
                    outcome.status, outcome.error = "sent", None
                    return outcome
                outcome.error = redact(error)
                if log is not None:
                    log.warning(f"cache revalidation attempt {attempt} failed: {outcome.error}")
                if attempt <= self.max_retries:
                    wait = self.backoff_seconds * 2 ** (attempt - 1)
                    wait *= 0.75 + random.random() / 2
                    outcome.waits.append(round(wait, 3))
                    time.sleep(wait)
        finally:
            client.close()
        return outcome

    def _attempt(self, client: ApiClient, body: dict[str, Any]) -> str | None:
        """One POST; None on success, else why it failed."""
        try:
            response = client.request("POST", self.revalidate_path, json=body)
        except ApiError as exc:
            return str(exc)
        if response.status_code >= 400:
            return f"HTTP {response.status_code} from {self.revalidate_path}"
        try:
            answer = decode_json(response, self.revalidate_path)
        except ApiError as exc:
            return str(exc)
        if not isinstance(answer, dict) or answer.get("success") is not True:
            reason = answer.get("error") if isinstance(answer, dict) else None
            return f"the app answered success=false ({str(reason or 'no reason')[:200]})"
        return None
