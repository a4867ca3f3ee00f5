-- The data database beside Dagster's own (docker-compose's postgres creates `dagster`).
CREATE DATABASE sync_assets;
