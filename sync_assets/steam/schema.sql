-- The steam schema. Idempotent: applied before every run.

-- Every app the Steam Web API has listed. Apps that leave the list are kept and marked.
CREATE TABLE IF NOT EXISTS apps (
    appid bigint PRIMARY KEY,
    name text NOT NULL DEFAULT '',
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    removed_from_catalog_at timestamptz
);

-- Store details of each app, as last fetched. Prices are in cents of `currency`.
CREATE TABLE IF NOT EXISTS app_details (
    appid bigint PRIMARY KEY,
    type text,
    name text,
    is_free boolean,
    required_age integer,
    developers text[],
    publishers text[],
    price_initial_cents bigint,
    price_final_cents bigint,
    currency text,
    discount_percent integer,
    platforms text[],
    genres text[],
    categories text[],
    release_date date,
    release_date_text text,
    coming_soon boolean,
    metacritic_score integer,
    recommendations bigint,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Tables made by earlier versions had these as integer, which VND or IDR cents outgrow
-- (above 21,474,836 units). Altered only while still integer, so a run pays one catalog read.
DO $$
DECLARE
    widen text;
BEGIN
    SELECT string_agg(format('ALTER COLUMN %I TYPE bigint', column_name), ', ')
      INTO widen
      FROM information_schema.columns
     WHERE table_schema = current_schema()
       AND table_name = 'app_details'
       AND column_name IN ('price_initial_cents', 'price_final_cents', 'recommendations')
       AND data_type = 'integer';
    IF widen IS NOT NULL THEN
        EXECUTE format('ALTER TABLE %I.app_details ', current_schema()) || widen;
    END IF;
END
$$;

-- Per-app sync state: when it was last fetched, and its run of errors with a backoff.
CREATE TABLE IF NOT EXISTS app_sync_status (
    appid bigint PRIMARY KEY,
    last_synced_at timestamptz,
    consecutive_errors integer NOT NULL DEFAULT 0,
    last_error text,
    last_error_at timestamptz,
    next_attempt_after timestamptz
);

CREATE INDEX IF NOT EXISTS app_sync_status_due
    ON app_sync_status (last_synced_at NULLS FIRST, appid);
