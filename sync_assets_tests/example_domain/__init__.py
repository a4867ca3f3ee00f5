"""An example domain, added with only the steps README's "Adding a new synced source" lists.

Not shipped: `sync_assets_tests/test_domains.py` registers it beside the real domains and shows
that the registry's checks name what it would otherwise forget, and that it syncs.
"""

import dagster as dg

from sync_assets.core.domain import Domain
from sync_assets.core.postgres import PostgresResource
from sync_assets_tests.example_domain.assets import quotes
from sync_assets_tests.example_domain.client import QUOTES_POOL, QuotesApiResource

example_sync_job = dg.define_asset_job(
    "example_sync_job",
    selection=dg.AssetSelection.assets(quotes),
    description="Every quote the quotes API lists.",
    tags={"sync_assets/domain": "example"},
)

defs = dg.Definitions(
    assets=[quotes],
    jobs=[example_sync_job],
    resources={
        "example_db": PostgresResource(schema_name="example", url_setting="EXAMPLE_DATABASE_URL"),
        "quotes_api": QuotesApiResource(),
    },
)

DOMAIN = Domain(
    name="example",
    defs=defs,
    settings=("EXAMPLE_DATABASE_URL", "QUOTES_API_BASE_URL", "QUOTES_API_KEY"),
    secret_settings=("EXAMPLE_DATABASE_URL", "QUOTES_API_KEY"),
    pools={QUOTES_POOL: 1},
    demo_run_config={"ops": {"quotes": {"config": {"min_length": 1}}}},
    sandbox="sync_assets_tests.example_domain.sandbox",
)
