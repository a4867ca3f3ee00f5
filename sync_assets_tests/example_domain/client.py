"""The quotes API resource (README step 1)."""

import dagster as dg

from sync_assets.core.http import ApiClient
from sync_assets.core.settings import require_setting

QUOTES_POOL = "quotes_api"


class QuotesApiResource(dg.ConfigurableResource):
    """The quotes API at `QUOTES_API_BASE_URL`, keyed with `QUOTES_API_KEY`."""

    def quotes(self) -> list[dict]:
        key = require_setting("QUOTES_API_KEY", "export the quotes API key")
        base = require_setting("QUOTES_API_BASE_URL", "export the quotes API's URL")
        client = ApiClient(base, headers={"x-api-key": key}, secrets=(key,), max_retries=2)
        try:
            return client.get_json("/quotes")["quotes"]
        finally:
            client.close()
