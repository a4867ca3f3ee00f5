-- The torn schema. Idempotent: applied before every run. `user_keys` belongs to the app.

-- Each user's Torn profile (selections=basic), as last fetched with the user's own key.
-- `updated_at` moves only when a value changed.
CREATE TABLE IF NOT EXISTS user_data (
    user_id varchar PRIMARY KEY,
    name varchar,
    player_id integer,
    level integer,
    gender varchar,
    status_state varchar,
    status_description varchar,
    updated_at timestamptz NOT NULL DEFAULT now()
);
