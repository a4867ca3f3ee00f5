"""Demo data for the streams domain: data models, their source files, and a sync request.

`seed_app_tables(scale)` creates the app's `streams.data_models` and `streams.stream_sync_jobs`
if needed, writes deterministic source files into the `sources` bucket (one per format, about
2,000 rows per unit of scale, a few values that do not cast), and adds one pending request.
Re-running it changes nothing: files whose content is already there are not rewritten.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import duckdb

from sync_assets.core.postgres import PostgresResource
from sync_assets.core.storage import ObjectStorageResource

ROWS_PER_SCALE = 2_000

# A table of `n` deterministic rows: every 499th amount is not a number (0.2% rejected).
ORDERS_SQL = """
SELECT i AS order_id,
       'customer ' || (i * 7919 % 997) AS customer,
       CASE WHEN i % 499 = 7 THEN 'n/a' ELSE CAST(round((i * 37 % 100000) / 100.0, 2) AS VARCHAR)
       END AS amount,
       i * 13 % 50 AS quantity,
       i % 3 = 0 AS paid,
       DATE '2024-01-01' + CAST(i % 700 AS INTEGER) AS order_date,
       TIMESTAMP '2024-01-01 00:00:00' + to_seconds(i * 17 % 60000000) AS created_at
FROM range({n}) t(i)
"""
EVENTS_SQL = """
SELECT 'evt-' || i AS event_id, ['click', 'view', 'buy'][1 + i % 3] AS kind,
       i % 211 AS user_id, TIMESTAMP '2025-03-01 00:00:00' + to_seconds(i * 7) AS at,
       CASE WHEN i % 5 = 0 THEN NULL ELSE round(i / 7.0, 3) END AS value
FROM range({n}) t(i)
"""
PRODUCTS_SQL = """
SELECT 'sku-' || lpad(CAST(i AS VARCHAR), 5, '0') AS sku, 'Product ' || i AS title,
       round(1 + (i * 31 % 5000) / 10.0, 2) AS price, i % 4 <> 0 AS in_stock
FROM range({n}) t(i)
"""
READINGS_SQL = """
SELECT i % 40 AS sensor, TIMESTAMP '2025-06-01 00:00:00' + to_seconds(i * 60) AS taken_at,
       round(15 + (i * 17 % 200) / 10.0, 1) AS celsius
FROM range({n}) t(i)
"""


def _mappings(*fields: tuple[str, str, str]) -> list[dict[str, str]]:
    return [{"source": s, "target": t, "type": k} for s, t, k in fields]


MODELS = [
    {
        "id": "orders",
        "name": "Orders",
        "source_uri": "sources/orders.csv",
        "source_format": "csv",
        "sql": ORDERS_SQL,
        "copy": "FORMAT csv, HEADER",
        "mappings": _mappings(
            ("order_id", "order_id", "integer"),
            ("customer", "customer", "text"),
            ("amount", "amount", "number"),
            ("quantity", "quantity", "integer"),
            ("paid", "paid", "boolean"),
            ("order_date", "order_date", "date"),
            ("created_at", "created_at", "timestamp"),
        ),
        "ref_fields": ["order_id"],
        "enabled": True,
    },
    {
        "id": "events",
        "name": "Click events",
        "source_uri": "sources/events.ndjson",
        "source_format": "ndjson",
        "sql": EVENTS_SQL,
        "copy": "FORMAT json",
        "mappings": _mappings(
            ("event_id", "id", "text"),
            ("kind", "kind", "text"),
            ("user_id", "user_id", "integer"),
            ("at", "occurred_at", "timestamp"),
            ("value", "value", "number"),
        ),
        "ref_fields": None,
        "enabled": True,
    },
    {
        "id": "products",
        "name": "Products",
        "source_uri": "sources/products.json",
        "source_format": "json",
        "sql": PRODUCTS_SQL,
        "copy": "FORMAT json, ARRAY true",
        "mappings": _mappings(
            ("sku", "sku", "text"),
            ("title", "title", "text"),
            ("price", "price", "number"),
            ("in_stock", "in_stock", "boolean"),
        ),
        "ref_fields": ["sku"],
        "enabled": True,
    },
    {
        "id": "readings",
        "name": "Sensor readings",
        "source_uri": "sources/readings.parquet",
        "source_format": "parquet",
        "sql": READINGS_SQL,
        "copy": "FORMAT parquet",
        "mappings": _mappings(
            ("sensor", "sensor", "integer"),
            ("taken_at", "taken_at", "timestamp"),
            ("celsius", "celsius", "number"),
        ),
        "ref_fields": ["sensor", "taken_at"],
        "enabled": True,
    },
    {
        "id": "archived-orders",
        "name": "Archived orders (disabled)",
        "source_uri": "sources/archived-orders.csv",
        "source_format": "csv",
        "sql": ORDERS_SQL,
        "copy": "FORMAT csv, HEADER",
        "mappings": _mappings(("order_id", "order_id", "integer")),
        "ref_fields": None,
        "enabled": False,
    },
]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def put_if_changed(storage: ObjectStorageResource, key: str, local_file: Path) -> bool:
    """Upload `local_file` as `key` unless the object already has this content."""
    fs, root = storage.filesystem()
    target = f"{root}/{key}"
    if fs.exists(target):
        digest = hashlib.sha256()
        with fs.open(target, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() == _sha256(local_file):
            return False
    fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
    temporary = f"{target}.uploading"
    fs.put_file(str(local_file), temporary)
    fs.mv(temporary, target)
    return True


def write_sources(storage: ObjectStorageResource, scale: float) -> int:
    """Generate every model's source file; return how many objects were (re)written."""
    rows = max(1, int(ROWS_PER_SCALE * scale))
    written = 0
    with tempfile.TemporaryDirectory() as folder, duckdb.connect() as con:
        for model in MODELS:
            local = Path(folder) / model["source_uri"].rsplit("/", 1)[1]
            query = model["sql"].format(n=rows)
            con.execute(f"COPY ({query}) TO '{local}' ({model['copy']})")
            written += put_if_changed(storage, model["source_uri"], local)
    return written


def seed_app_tables(scale: float = 1.0) -> None:
    """Data models, their source files and one pending request (idempotent)."""
    from sync_assets.streams.models import apply_schema

    db = PostgresResource(schema_name="streams", url_setting="STREAMS_DATABASE_URL")
    apply_schema(db)
    write_sources(ObjectStorageResource(), scale)
    with db.transaction() as conn:
        for model in MODELS:
            conn.execute(
                "INSERT INTO data_models (id, name, source_uri, source_format, field_mappings,"
                " ref_fields, enabled) VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s)"
                " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,"
                " source_uri = EXCLUDED.source_uri, source_format = EXCLUDED.source_format,"
                " field_mappings = EXCLUDED.field_mappings, ref_fields = EXCLUDED.ref_fields,"
                " enabled = EXCLUDED.enabled",
                (
                    model["id"],
                    model["name"],
                    model["source_uri"],
                    model["source_format"],
                    json.dumps(model["mappings"]),
                    model["ref_fields"],
                    model["enabled"],
                ),
            )
        conn.execute(
            "INSERT INTO stream_sync_jobs (data_model_id) SELECT 'orders'"
            " WHERE NOT EXISTS (SELECT 1 FROM stream_sync_jobs WHERE data_model_id = 'orders')"
        )
