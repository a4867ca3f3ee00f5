-- Tables the app owns; created here only if missing so a fresh database works.
CREATE TABLE IF NOT EXISTS data_models (
    id             text PRIMARY KEY,
    name           text NOT NULL DEFAULT '',
    source_uri     text NOT NULL,
    source_format  text NOT NULL CHECK (source_format IN ('csv', 'ndjson', 'json', 'parquet')),
    field_mappings jsonb NOT NULL DEFAULT '[]'::jsonb,
    ref_fields     text[],
    enabled        boolean NOT NULL DEFAULT true,
    parquet_uri    text,
    row_count      bigint,
    synced_at      timestamptz
);

CREATE TABLE IF NOT EXISTS stream_sync_jobs (
    id             bigserial PRIMARY KEY,
    data_model_id  text NOT NULL,
    requested_at   timestamptz NOT NULL DEFAULT now(),
    status         text NOT NULL DEFAULT 'pending',
    run_id         text,
    attempts       integer NOT NULL DEFAULT 0,
    error          text
);

CREATE INDEX IF NOT EXISTS stream_sync_jobs_open
    ON stream_sync_jobs (id) WHERE status IN ('pending', 'queued');
