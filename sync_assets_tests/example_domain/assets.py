"""The example asset: fetch, keep the valid rows, upsert in one transaction (README step 3)."""

from importlib import resources

import dagster as dg

from sync_assets.core.domain import asset_tags
from sync_assets.core.postgres import PostgresResource
from sync_assets.core.upsert import upsert_rows
from sync_assets_tests.example_domain.client import QUOTES_POOL, QuotesApiResource


class QuotesConfig(dg.Config):
    min_length: int = 1


@dg.asset(
    group_name="example",
    kinds={"python", "postgres"},
    tags=asset_tags(table="example.quotes", provider=QUOTES_POOL),
    pool=QUOTES_POOL,
)
def quotes(
    config: QuotesConfig, quotes_api: QuotesApiResource, example_db: PostgresResource
) -> dg.MaterializeResult:
    """Every quote the quotes API lists."""
    example_db.apply_ddl(
        resources.files("sync_assets_tests.example_domain").joinpath("schema.sql").read_text()
    )
    fetched = quotes_api.quotes()
    rows = [(q["id"], q["text"]) for q in fetched if len(q.get("text") or "") >= config.min_length]
    with example_db.transaction() as conn:
        counts = upsert_rows(conn, "quotes", ["id", "text"], rows, ["id"])
    return dg.MaterializeResult(
        metadata={"rows_fetched": len(fetched), "inserted": counts.inserted}
    )
