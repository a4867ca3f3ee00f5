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
    scorers jsonb NOT NULL
);

-- One scorer in a match report (to_jsonb of an array of them gives the scorers' objects).
DO $$ BEGIN
    CREATE TYPE scorer AS (player_id integer, player text, goals integer);
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

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

-- Elo over the refresh's `club_results` temp table, in match order (match_date, match_id).
-- Ratings live in an array indexed by the player's number (`club_results.idx`), so each match
-- costs O(players in it).
CREATE OR REPLACE FUNCTION elo_ratings(k double precision DEFAULT 20)
RETURNS TABLE (player_id integer, rating double precision, matches_rated integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    ratings double precision[];
    m record;
    i integer;
    mean_a double precision;
    mean_b double precision;
    expected_a double precision;
    actual_a double precision;
    delta_a double precision;
BEGIN
    SELECT array_fill(1000::double precision, ARRAY[greatest(coalesce(max(r.idx), 0), 1)::int])
      INTO ratings FROM club_results r;
    FOR m IN
        SELECT array_agg(r.idx ORDER BY r.idx) FILTER (WHERE r.team = 'A') AS side_a,
               array_agg(r.idx ORDER BY r.idx) FILTER (WHERE r.team = 'B') AS side_b,
               max(r.goals_for) FILTER (WHERE r.team = 'A') AS score_a,
               max(r.goals_for) FILTER (WHERE r.team = 'B') AS score_b
          FROM club_results r
         GROUP BY r.match_date, r.match_id
         ORDER BY r.match_date, r.match_id
    LOOP
        mean_a := 0;
        FOREACH i IN ARRAY m.side_a LOOP mean_a := mean_a + ratings[i]; END LOOP;
        mean_a := mean_a / cardinality(m.side_a);
        mean_b := 0;
        FOREACH i IN ARRAY m.side_b LOOP mean_b := mean_b + ratings[i]; END LOOP;
        mean_b := mean_b / cardinality(m.side_b);
        expected_a := 1 / (1 + power(10::double precision, (mean_b - mean_a) / 400));
        actual_a := CASE WHEN m.score_a > m.score_b THEN 1
                         WHEN m.score_a = m.score_b THEN 0.5 ELSE 0 END;
        delta_a := k * (actual_a - expected_a);
        FOREACH i IN ARRAY m.side_a LOOP ratings[i] := ratings[i] + delta_a; END LOOP;
        FOREACH i IN ARRAY m.side_b LOOP ratings[i] := ratings[i] - delta_a; END LOOP;
    END LOOP;
    -- Every valid match rates all its players: matches_rated is the player's match count.
    RETURN QUERY
        SELECT r.player_id, ratings[min(r.idx)], count(*)::integer
          FROM club_results r GROUP BY r.player_id;
END;
$$;
