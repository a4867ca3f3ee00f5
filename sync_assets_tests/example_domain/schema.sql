CREATE TABLE IF NOT EXISTS quotes (
    id integer PRIMARY KEY,
    text text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
