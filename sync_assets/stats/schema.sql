-- The stats schema: one table per aggregate asset, replaced whole by each refresh.
-- Applied idempotently (search_path = stats) before first use.

CREATE TABLE IF NOT EXISTS season_stats (
    season_id integer NOT NULL,
    player_id integer NOT NULL,
    games integer NOT NULL,
    wins integer NOT NULL,
    draws integer NOT NULL,
    losses integer NOT NULL,
    goals integer NOT NULL,
    points integer NOT NULL,
    PRIMARY KEY (season_id, player_id)
);

CREATE TABLE IF NOT EXISTS half_season_stats (
    season_id integer NOT NULL,
    half smallint NOT NULL CHECK (half IN (1, 2)),
    player_id integer NOT NULL,
    games integer NOT NULL,
    wins integer NOT NULL,
    draws integer NOT NULL,
    losses integer NOT NULL,
    goals integer NOT NULL,
    points integer NOT NULL,
    PRIMARY KEY (season_id, half, player_id)
);

CREATE TABLE IF NOT EXISTS all_time_stats (
    player_id integer PRIMARY KEY,
    games integer NOT NULL,
    wins integer NOT NULL,
    draws integer NOT NULL,
    losses integer NOT NULL,
    goals integer NOT NULL,
    points integer NOT NULL,
    win_pct double precision NOT NULL
);

CREATE TABLE IF NOT EXISTS hall_of_fame (
    category text NOT NULL,
    rank integer NOT NULL,
    player_id integer NOT NULL,
    value double precision NOT NULL,
    PRIMARY KEY (category, player_id)
);

CREATE TABLE IF NOT EXISTS recent_performance (
    player_id integer PRIMARY KEY,
    last_5 text NOT NULL,
    goals_last_5 integer NOT NULL,
    points_last_5 integer NOT NULL,
    last_match_date date NOT NULL
);

CREATE TABLE IF NOT EXISTS season_honours_and_records (
    kind text NOT NULL,
    season_id integer,
    player_id integer,
    match_id integer,
    value integer NOT NULL
);
CREATE INDEX IF NOT EXISTS season_honours_and_records_kind_idx
    ON season_honours_and_records (kind, season_id);

CREATE TABLE IF NOT EXISTS match_report (
    match_id integer PRIMARY KEY,
    match_date date NOT NULL,
    season_id integer,
    team_a_score integer NOT NULL,
    team_b_score integer NOT NULL,
    team_a text[] NOT NULL,
    team_b text[] NOT NULL,
    scorers jsonb NOT NULL,
    -- MD5 of the row as the refresh wrote it: a refresh compares this instead of reading the
    -- line-ups and scorers back (the refresh is the table's only writer)
    row_digest uuid
);
ALTER TABLE match_report ADD COLUMN IF NOT EXISTS row_digest uuid;

CREATE TABLE IF NOT EXISTS personal_bests (
    player_id integer PRIMARY KEY,
    most_goals_in_match integer NOT NULL,
    longest_win_streak integer NOT NULL,
    longest_unbeaten_streak integer NOT NULL,
    best_season_points integer
);

CREATE TABLE IF NOT EXISTS player_profile_stats (
    player_id integer PRIMARY KEY,
    name text NOT NULL,
    is_ringer boolean NOT NULL,
    is_retired boolean NOT NULL,
    games integer NOT NULL,
    goals integer NOT NULL,
    points integer NOT NULL,
    win_pct double precision,
    seasons_played integer NOT NULL,
    current_streak text,
    power_rating double precision NOT NULL
);

CREATE TABLE IF NOT EXISTS season_race_data (
    season_id integer NOT NULL,
    player_id integer NOT NULL,
    match_id integer NOT NULL,
    match_date date NOT NULL,
    cumulative_points integer NOT NULL,
    PRIMARY KEY (season_id, player_id, match_id)
);

CREATE TABLE IF NOT EXISTS power_ratings (
    player_id integer PRIMARY KEY,
    rating double precision NOT NULL,
    matches_rated integer NOT NULL
);

-- Earlier versions computed in PostgreSQL with these; the refresh now computes in DuckDB.
DROP FUNCTION IF EXISTS elo_ratings(double precision);
DROP TYPE IF EXISTS scorer;
