"""Writing one API-Football sync into the football schema, in the caller's transaction.

Countries first (the `/countries` list, then any country only a league names), then the leagues
in chunks, each chunk's leagues, seasons and coverage together, so memory stays flat however
many leagues come. Bad items are dropped, counted and sampled per table; above the threshold
the caller's transaction is rolled back and nothing is written.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import psycopg

from sync_assets.core.postgres import PostgresResource
from sync_assets.core.redaction import redact
from sync_assets.core.upsert import UpsertCounts, upsert_rows
from sync_assets.core.validation import SAMPLE_SIZE, TooManyInvalidError, validate_frame

TABLES = ("countries", "leagues", "seasons", "season_coverage")
COUNTRY_COLUMNS = ("name", "code", "flag")
LEAGUE_COLUMNS = ("id", "name", "type", "logo", "country_name")
SEASON_COLUMNS = ("league_id", "year", "start", "end", "current")


def apply_schema(db: PostgresResource) -> None:
    db.apply_ddl(resources.files("sync_assets.football").joinpath("schema.sql").read_text())


def slugify(text: str) -> str:
    """ASCII, lower case, words joined by hyphens: "Côte d'Ivoire" -> "cote-d-ivoire"."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def _short_hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=3).hexdigest()


@dataclass
class TableReport:
    """What happened to one table in this sync."""

    fetched: int = 0
    invalid: int = 0
    duplicates: int = 0
    written: UpsertCounts = field(default_factory=UpsertCounts)
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def valid(self) -> int:
        return self.fetched - self.invalid

    def add_samples(self, samples: Iterable[dict[str, Any]], context: str) -> None:
        for sample in samples:
            if len(self.samples) >= SAMPLE_SIZE:
                return
            self.samples.append({"item": context, **sample})

    def add_written(self, counts: UpsertCounts) -> None:
        self.written = UpsertCounts(
            inserted=self.written.inserted + counts.inserted,
            updated=self.written.updated + counts.updated,
            unchanged=self.written.unchanged + counts.unchanged,
            duplicates=self.written.duplicates + counts.duplicates,
        )

    def check(self, table: str, threshold: float) -> None:
        share = self.invalid / self.fetched if self.fetched else 0.0
        if share > threshold:
            raise TooManyInvalidError(
                f"{table}: {self.invalid} of {self.fetched} items invalid ({share:.1%} > "
                f"{threshold:.0%} allowed); nothing was written. Samples: {self.samples[:3]}"
            )

    def as_metadata(self) -> dict[str, Any]:
        return {
            "fetched": self.fetched,
            "valid": self.valid,
            "invalid": self.invalid,
            "inserted": self.written.inserted,
            "updated": self.written.updated,
            "unchanged": self.written.unchanged,
            "duplicates_dropped": self.duplicates,
        }


@dataclass
class SyncReport:
    tables: dict[str, TableReport] = field(
        default_factory=lambda: {name: TableReport() for name in TABLES}
    )


class _Slugs:
    """Slugs unique within a table and kept once given: `base`, else `base-<suffix>`.

    A name with no Latin letters or digits ("日本") gets `<kind>-<suffix>`.
    """

    def __init__(self, existing: dict[Any, str], kind: str) -> None:
        self.by_key = dict(existing)
        self.taken = set(existing.values())
        self.kind = kind

    def slug_for(self, key: Any, base: str, suffix: str) -> str:
        if key in self.by_key:
            return self.by_key[key]
        if not base:
            slug = f"{self.kind}-{suffix}"
        else:
            slug = base if base not in self.taken else f"{base}-{suffix}"
        while slug in self.taken:
            slug = f"{slug}-{_short_hash(slug)}"
        self.by_key[key] = slug
        self.taken.add(slug)
        return slug


class FootballWriter:
    """Writes one sync; `write_countries`, then `write_leagues`, then `check(threshold)`."""

    def __init__(
        self,
        conn: psycopg.Connection,
        *,
        threshold: float,
        chunk_size: int = 1_000,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.conn = conn
        self.threshold = threshold
        self.chunk_size = chunk_size
        self.progress = progress or (lambda _message: None)
        self.report = SyncReport()
        existing = conn.execute("SELECT name, id, slug FROM countries").fetchall()
        self.country_ids: dict[str, int] = {name: cid for name, cid, _ in existing}
        self.country_slugs = _Slugs({name: slug for name, _, slug in existing}, "country")
        self.league_slugs = _Slugs(
            dict(conn.execute("SELECT id, slug FROM leagues").fetchall()), "league"
        )

    # countries -------------------------------------------------------------------------------
    def write_countries(self, items: Iterable[Any], *, source: str = "/countries") -> None:
        """Validate and upsert countries (all of `/countries`: a few hundred at most)."""
        import pandas as pd

        from sync_assets.football.schemas import CountryRow

        report = self.report.tables["countries"]
        rows: dict[str, tuple[Any, ...]] = {}
        frame_rows = []
        for item in items:
            report.fetched += 1
            if not isinstance(item, dict):
                report.invalid += 1
                report.add_samples([_shape_sample(item, "a country object")], source)
                continue
            frame_rows.append(tuple(item.get(c) for c in COUNTRY_COLUMNS))
        if not frame_rows:
            return
        outcome = validate_frame(
            pd.DataFrame(frame_rows, columns=list(COUNTRY_COLUMNS), dtype=object),
            CountryRow,
            name="countries",
        )
        report.invalid += outcome.invalid
        report.add_samples(outcome.samples, source)
        for name, code, flag in outcome.valid.itertuples(index=False, name=None):
            name = name.strip()
            if name in rows:
                report.duplicates += 1
            slug = self.country_slugs.slug_for(name, slugify(name), _short_hash(name))
            rows[name] = (name, slug, code, flag)
        counts = upsert_rows(
            self.conn, "countries", ["name", "slug", "code", "flag"], rows.values(), ["name"]
        )
        report.add_written(counts)
        self._load_country_ids(list(rows))

    def _load_country_ids(self, names: list[str]) -> None:
        for name, cid in self.conn.execute(
            "SELECT name, id FROM countries WHERE name = ANY(%s)", (names,)
        ):
            self.country_ids[name] = cid

    # leagues, seasons, coverage ----------------------------------------------------------------
    def write_leagues(self, items: Iterable[Any], expected: int) -> None:
        """Validate and upsert league items chunk by chunk, with their seasons and coverage.

        `expected` (the number of items in the answer) lets the sync stop as soon as the
        invalid leagues already exceed the threshold.
        """
        iterator = iter(items)
        position = 0
        while chunk := list(itertools.islice(iterator, self.chunk_size)):
            self._write_chunk(chunk, position)
            position += len(chunk)
            leagues = self.report.tables["leagues"]
            if expected and leagues.invalid > self.threshold * expected:
                raise TooManyInvalidError(
                    f"leagues: {leagues.invalid} of {expected} items invalid already (more than "
                    f"{self.threshold:.0%}); stopped, nothing was written. "
                    f"Samples: {leagues.samples[:3]}"
                )
            self.progress(f"{position} of {expected} leagues written")

    def _write_chunk(self, chunk: list[Any], offset: int) -> None:
        import pandas as pd

        from sync_assets.football.schemas import LeagueRow

        leagues = self.report.tables["leagues"]
        league_rows: list[tuple[Any, ...]] = []
        seasons_of: dict[int, list[Any]] = {}
        new_countries: dict[str, Any] = {}
        for number, item in enumerate(chunk, start=offset):
            leagues.fetched += 1
            where = f"league item {number}"
            league = item.get("league") if isinstance(item, dict) else None
            country = item.get("country") if isinstance(item, dict) else None
            seasons = item.get("seasons", []) if isinstance(item, dict) else None
            if not isinstance(league, dict) or not isinstance(country, dict):
                leagues.invalid += 1
                leagues.add_samples([_shape_sample(item, "league and country objects")], where)
                continue
            if not isinstance(seasons, list):
                leagues.invalid += 1
                leagues.add_samples([_shape_sample(seasons, "a seasons list")], where)
                continue
            name = country.get("name")
            if isinstance(name, str) and name.strip() and name.strip() not in self.country_ids:
                new_countries.setdefault(name.strip(), dict(country, name=name.strip()))
            country_name = name.strip() if isinstance(name, str) else name
            league_rows.append(
                (
                    league.get("id"),
                    league.get("name"),
                    league.get("type"),
                    league.get("logo"),
                    country_name,
                )
            )
            seasons_of[len(league_rows) - 1] = seasons
        if new_countries:
            self.write_countries(new_countries.values(), source="/leagues country")
        if not league_rows:
            return
        frame = pd.DataFrame(league_rows, columns=list(LEAGUE_COLUMNS), dtype=object)
        # A league whose country was rejected is rejected too.
        frame.loc[~frame["country_name"].isin(self.country_ids.keys()), "country_name"] = None
        outcome = validate_frame(frame, LeagueRow, name="leagues")
        leagues.invalid += outcome.invalid
        leagues.add_samples(outcome.samples, f"league items {offset}-{offset + len(chunk) - 1}")
        rows: dict[int, tuple[Any, ...]] = {}
        season_items: list[tuple[int, Any]] = []
        for position, (league_id, name, kind, logo, country_name) in zip(
            outcome.valid.index, outcome.valid.itertuples(index=False, name=None), strict=True
        ):
            if league_id in rows:
                leagues.duplicates += 1
            base = slugify(f"{country_name} {name}")
            slug = self.league_slugs.slug_for(league_id, base, str(league_id))
            rows[league_id] = (
                league_id,
                name.strip(),
                kind,
                logo,
                self.country_ids[country_name],
                slug,
            )
            season_items.extend((league_id, s) for s in seasons_of[position])
        leagues.add_written(
            upsert_rows(
                self.conn,
                "leagues",
                ["id", "name", "type", "logo", "country_id", "slug"],
                rows.values(),
                ["id"],
            )
        )
        self._write_seasons(season_items)

    def _write_seasons(self, season_items: list[tuple[int, Any]]) -> None:
        import pandas as pd

        from sync_assets.football.schemas import SeasonRow, parse_date

        seasons = self.report.tables["seasons"]
        season_rows = []
        coverage_rows = []
        for league_id, season in season_items:
            seasons.fetched += 1
            if not isinstance(season, dict):
                seasons.invalid += 1
                seasons.add_samples(
                    [_shape_sample(season, "a season object")], f"league {league_id}"
                )
                continue
            get = season.get
            season_rows.append((league_id, get("year"), get("start"), get("end"), get("current")))
            coverage_rows.append((league_id, season.get("year"), season.get("coverage")))
        if not season_rows:
            return
        outcome = validate_frame(
            pd.DataFrame(season_rows, columns=list(SEASON_COLUMNS), dtype=object),
            SeasonRow,
            name="seasons",
        )
        seasons.invalid += outcome.invalid
        seasons.add_samples(outcome.samples, "seasons")
        # The same year listed twice for a league: keep the current one, else the later listed.
        chosen: dict[tuple[int, int], tuple[int, tuple[Any, ...]]] = {}
        for position, (league_id, year, start, end, current) in zip(
            outcome.valid.index, outcome.valid.itertuples(index=False, name=None), strict=True
        ):
            key = (league_id, year)
            row = (league_id, year, parse_date(start), parse_date(end), current)
            if key in chosen:
                seasons.duplicates += 1
                if chosen[key][1][4] and not current:
                    continue
            chosen[key] = (position, row)
        seasons.add_written(
            upsert_rows(
                self.conn,
                "seasons",
                ["league_id", "year", "start_date", "end_date", "current"],
                (row for _, row in chosen.values()),
                ["league_id", "year"],
            )
        )
        ids = {
            (league_id, year): sid
            for sid, league_id, year in self.conn.execute(
                "SELECT id, league_id, year FROM seasons WHERE league_id = ANY(%s)",
                (sorted({k[0] for k in chosen}),),
            )
        }
        self._write_coverage([coverage_rows[p] for p, _ in chosen.values()], ids)

    def _write_coverage(
        self, items: list[tuple[int, int, Any]], season_ids: dict[tuple[int, int], int]
    ) -> None:
        import pandas as pd

        from sync_assets.football.schemas import COVERAGE_COLUMNS, CoverageRow

        # COVERAGE_COLUMNS is the fixtures' flags (prefixed), then the season's own.
        fixture_flags = [
            c.removeprefix("fixtures_") for c in COVERAGE_COLUMNS if c.startswith("fixtures_")
        ]
        other_flags = [c for c in COVERAGE_COLUMNS if not c.startswith("fixtures_")]
        report = self.report.tables["season_coverage"]
        rows = []
        for league_id, year, cover in items:
            report.fetched += 1
            if not isinstance(cover, dict):
                report.invalid += 1
                report.add_samples(
                    [_shape_sample(cover, "a coverage object")], f"league {league_id} {year}"
                )
                continue
            fixtures = cover.get("fixtures")
            fixtures = fixtures if isinstance(fixtures, dict) else {}
            rows.append(
                (
                    league_id,
                    year,
                    *(fixtures.get(name) for name in fixture_flags),
                    *(cover.get(name) for name in other_flags),
                )
            )
        if not rows:
            return
        outcome = validate_frame(
            pd.DataFrame(rows, columns=["league_id", "year", *COVERAGE_COLUMNS], dtype=object),
            CoverageRow,
            name="season_coverage",
        )
        report.invalid += outcome.invalid
        report.add_samples(outcome.samples, "season coverage")
        written = (
            (season_ids[(row[0], row[1])], *row[2:])
            for row in outcome.valid.itertuples(index=False, name=None)
        )
        report.add_written(
            upsert_rows(
                self.conn,
                "season_coverage",
                ["season_id", *COVERAGE_COLUMNS],
                written,
                ["season_id"],
            )
        )

    def check(self) -> None:
        """Fail (the caller rolls back) when any table's invalid share is above the threshold."""
        for table in TABLES:
            self.report.tables[table].check(table, self.threshold)


def _shape_sample(value: Any, expected: str) -> dict[str, Any]:
    return {"column": "(item)", "check": f"expected {expected}", "value": redact(repr(value))[:200]}


def table_counts(conn: psycopg.Connection) -> dict[str, int]:
    from psycopg import sql

    return {
        table: conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone()[0]  # type: ignore[index]
        for table in TABLES
    }
