"""Writing one API-Football sync into the football schema, in the caller's transaction.

Countries first (the `/countries` list, then any country only a league names), then the leagues
in chunks, each chunk's leagues, seasons and coverage together, so memory stays flat however
many leagues come. Bad items are dropped, counted and sampled per table; above the threshold
the caller's transaction is rolled back and nothing is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import operator
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

from sync_assets.core.ahead import StatementsAhead
from sync_assets.core.foreign_keys import all_empty, foreign_keys_set_aside
from sync_assets.core.postgres import PostgresResource
from sync_assets.core.redaction import redact
from sync_assets.core.upsert import (
    UpsertCounts,
    copy_rows,
    upsert_rows,
    upsert_statement,
    upserted_counts,
)
from sync_assets.core.validation import SAMPLE_SIZE, TooManyInvalidError, validate_records
from sync_assets.football import schemas, unchanged
from sync_assets.football.schemas import parse_date

TABLES = ("countries", "leagues", "seasons", "season_coverage")
LEAGUE_COLUMNS = ("id", "name", "type", "logo", "country_id", "slug")
SEASON_COLUMNS = ("league_id", "year", "start_date", "end_date", "current")
# A chunk's rows wait in two temp tables: its leagues, and its seasons each with its coverage
# flags (NULL when the coverage was invalid), joined to the seasons' ids in PostgreSQL.
CHUNK_LEAGUES = "_chunk_leagues"
CHUNK_SEASONS = "_chunk_seasons"
CHUNK_SEASON_COLUMNS = (*SEASON_COLUMNS, *schemas.COVERAGE_COLUMNS)
CREATE_CHUNK_STAGES = sql.SQL(
    "DROP TABLE IF EXISTS {leagues}, {seasons};"
    " CREATE TEMP TABLE {leagues} ON COMMIT DROP AS SELECT {league_columns} FROM leagues"
    " WITH NO DATA;"
    " CREATE TEMP TABLE {seasons} ON COMMIT DROP AS SELECT {season_columns}, {coverage_columns}"
    " FROM seasons s, season_coverage c WITH NO DATA"
).format(
    leagues=sql.Identifier(CHUNK_LEAGUES),
    seasons=sql.Identifier(CHUNK_SEASONS),
    league_columns=sql.SQL(", ").join(map(sql.Identifier, LEAGUE_COLUMNS)),
    season_columns=sql.SQL(", ").join(sql.Identifier("s", c) for c in SEASON_COLUMNS),
    coverage_columns=sql.SQL(", ").join(sql.Identifier("c", c) for c in schemas.COVERAGE_COLUMNS),
)
UPSERT_CHUNK_LEAGUES = upsert_statement(
    "leagues", sql.Identifier(CHUNK_LEAGUES), LEAGUE_COLUMNS, ["id"], touch_column="updated_at"
)
UPSERT_CHUNK_SEASONS = upsert_statement(
    "seasons",
    sql.Identifier(CHUNK_SEASONS),
    SEASON_COLUMNS,
    ["league_id", "year"],
    touch_column="updated_at",
)
UPSERT_CHUNK_COVERAGE = upsert_statement(
    "season_coverage",
    sql.SQL(
        "(SELECT s.id AS season_id, {coverage} FROM {stage} c"
        " JOIN seasons s ON s.league_id = c.league_id AND s.year = c.year"
        " WHERE c.{first_flag} IS NOT NULL) AS covered"
    ).format(
        coverage=sql.SQL(", ").join(sql.Identifier("c", c) for c in schemas.COVERAGE_COLUMNS),
        stage=sql.Identifier(CHUNK_SEASONS),
        first_flag=sql.Identifier(schemas.COVERAGE_COLUMNS[0]),
    ),
    ["season_id", *schemas.COVERAGE_COLUMNS],
    ["season_id"],
    touch_column="updated_at",
)
EMPTY_CHUNK_STAGES = sql.SQL("TRUNCATE {}, {}").format(
    sql.Identifier(CHUNK_LEAGUES), sql.Identifier(CHUNK_SEASONS)
)
NO_COVERAGE = (None,) * len(schemas.COVERAGE_COLUMNS)
# A validated coverage object's flags in column order (itemgetter: 100,000 seasons per sync).
FIXTURE_FLAGS_OF = operator.itemgetter(*schemas.COVERAGE_FIXTURE_FLAGS)
SEASON_FLAGS_OF = operator.itemgetter(*schemas.COVERAGE_SEASON_FLAGS)


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

    def totals(self) -> list[tuple[int, int, int]]:
        """(fetched, invalid, duplicates) so far of each table, in TABLES order."""
        return [(t.fetched, t.invalid, t.duplicates) for t in self.tables.values()]


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
    """Writes one sync; `write_countries`, then `write_leagues`, then `check(threshold)`.

    `previous` is what the last successful sync recorded about its chunks of leagues
    (`unchanged.ChunkDigests`): a chunk it wrote whole, read the same again and still the same in
    the tables is counted unchanged without being validated or written again.
    """

    def __init__(
        self,
        conn: psycopg.Connection,
        *,
        threshold: float,
        chunk_size: int = 1_000,
        progress: Callable[[str], None] | None = None,
        previous: unchanged.ChunkDigests | None = None,
    ) -> None:
        self.conn = conn
        self.threshold = threshold
        self.chunk_size = chunk_size
        self.progress = progress or (lambda _message: None)
        self.report = SyncReport()
        self.previous = previous if previous and previous.chunk_size == chunk_size else None
        self.digests = unchanged.ChunkDigests(chunk_size=chunk_size)
        self.ahead = StatementsAhead(conn)
        existing = conn.execute("SELECT name, id, slug FROM countries").fetchall()
        self.country_ids: dict[str, int] = {name: cid for name, cid, _ in existing}
        self.country_slugs = _Slugs({name: slug for name, _, slug in existing}, "country")
        self.league_slugs = _Slugs(
            dict(conn.execute("SELECT id, slug FROM leagues").fetchall()), "league"
        )

    # countries -------------------------------------------------------------------------------
    def write_countries(self, items: Iterable[Any], *, source: str = "/countries") -> None:
        """Validate and upsert countries (all of `/countries`: a few hundred at most)."""
        self.ahead.settle()  # COPY (in upsert_rows) cannot run beside statements in flight
        report = self.report.tables["countries"]
        records = []
        for item in items:
            report.fetched += 1
            if not isinstance(item, dict):
                report.invalid += 1
                report.add_samples([_shape_sample(item, "a country object")], source)
                continue
            records.append(item)
        if not records:
            return
        outcome = validate_records(schemas.COUNTRIES, records)
        report.invalid += len(outcome.rejected)
        report.add_samples(outcome.samples, source)
        rows: dict[str, tuple[Any, ...]] = {}
        for country in outcome.valid(records):
            name = country["name"].strip()
            if name in rows:
                report.duplicates += 1
            slug = self.country_slugs.slug_for(name, slugify(name), _short_hash(name))
            rows[name] = (name, slug, country.get("code"), country.get("flag"))
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
    def write_leagues(self, items: Iterable[tuple[Any, str]], expected: int) -> None:
        """Validate and upsert league items (each with the text it was parsed from) chunk by
        chunk, with their seasons and coverage.

        Each chunk's upserts are sent ahead: PostgreSQL writes one chunk while the next is
        parsed and validated. `expected` (the number of items in the answer) lets the sync stop
        as soon as the invalid leagues already exceed the threshold.
        """
        self.conn.execute(CREATE_CHUNK_STAGES)
        iterator = iter(items)
        position = 0
        tables = unchanged.COUNTED_TABLES
        # A first load checks the foreign keys of its 100,000 rows once, at the end.
        keys = (
            foreign_keys_set_aside(self.conn, tables)
            if all_empty(self.conn, tables)
            else contextlib.nullcontext(False)
        )
        with keys as set_aside, self.ahead:
            if set_aside:
                self.progress(f"{', '.join(tables)} empty: foreign keys checked after the load")
            while chunk := list(itertools.islice(iterator, self.chunk_size)):
                self._write_or_skip_chunk(chunk, position)
                position += len(chunk)
                leagues = self.report.tables["leagues"]
                if expected and leagues.invalid > self.threshold * expected:
                    raise TooManyInvalidError(
                        f"leagues: {leagues.invalid} of {expected} items invalid already (more "
                        f"than {self.threshold:.0%}); stopped, nothing was written. "
                        f"Samples: {leagues.samples[:3]}"
                    )
                self.progress(f"{position} of {expected or '?'} leagues validated and sent")

    def _write_or_skip_chunk(self, read: list[tuple[Any, str]], offset: int) -> None:
        chunk = [item for item, _ in read]
        source = unchanged.source_digest([text for _, text in read])
        id_range = unchanged.league_id_range(chunk)
        recorded = self.previous.get(len(self.digests.chunks)) if self.previous else None
        if (
            recorded is not None
            and source == recorded.source
            and id_range == (recorded.first_id, recorded.last_id)
        ):
            self.ahead.settle()  # the range's rows as the chunks before it left them
            if recorded.still_stored(self.conn):
                self._count_unchanged(recorded.counts)
                self.digests.add(recorded)
                return
        before = self.report.totals()
        self._write_chunk(chunk, offset)
        changes = list(zip(TABLES, before, self.report.totals(), strict=True))
        counts = {
            table: [after[0] - start[0], after[2] - start[2]]
            for table, start, after in changes
            if table in unchanged.COUNTED_TABLES
        }
        # Only a chunk with nothing invalid can be skipped later: its samples are not kept.
        valid = all(start[1] == after[1] for _, start, after in changes)
        index = len(self.digests.chunks)
        self.digests.add(None)
        if valid and id_range is not None:

            def record(cursor: psycopg.Cursor) -> None:
                content = cursor.fetchone()[0]  # type: ignore[index]
                digest = unchanged.ChunkDigest(source, *id_range, content, counts)
                self.digests.chunks[index] = digest

            first, last = id_range
            self.ahead.send(unchanged.CONTENT_DIGEST, {"first": first, "last": last}, record)

    def write_leagues_or_count_unchanged(
        self, items: Iterable[tuple[Any, str]], expected: int, answer: str
    ) -> None:
        """`write_leagues`, unless `answer` (the digest of the `/leagues` answer's bytes) is the
        last sync's and every chunk of it is still stored as written: then every league, season
        and coverage row is counted unchanged without the answer being parsed."""
        recorded = self.previous.unchanged_answer(self.conn, answer) if self.previous else None
        if recorded is not None:
            self.digests.answer_unchanged = True
            for chunk in recorded:
                self._count_unchanged(chunk.counts)
                self.digests.add(chunk)
        else:
            self.write_leagues(items, expected)
        if all(self.digests.chunks):
            self.digests.answer = answer

    def _count_unchanged(self, counts: dict[str, list[int]]) -> None:
        """Report a skipped chunk as its last full write did: every row unchanged."""
        for table in unchanged.COUNTED_TABLES:
            fetched, duplicates = counts[table]
            report = self.report.tables[table]
            report.fetched += fetched
            report.duplicates += duplicates
            report.add_written(UpsertCounts(unchanged=fetched - duplicates))
        self.digests.skipped += 1

    def _write_chunk(self, chunk: list[Any], offset: int) -> None:
        leagues = self.report.tables["leagues"]
        records: list[dict[str, Any]] = []
        seasons_of: list[list[Any]] = []
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
            get = league.get
            records.append(
                {
                    "id": get("id"),
                    "name": get("name"),
                    "type": get("type"),
                    "logo": get("logo"),
                    "country_name": name.strip() if isinstance(name, str) else name,
                }
            )
            seasons_of.append(seasons)
        if new_countries:
            self.write_countries(new_countries.values(), source="/leagues country")
        if not records:
            return
        # A league whose country was rejected is rejected too.
        for record in records:
            if not isinstance(record["country_name"], str) or (
                record["country_name"] not in self.country_ids
            ):
                record["country_name"] = None
        outcome = validate_records(schemas.LEAGUES, records)
        leagues.invalid += len(outcome.rejected)
        leagues.add_samples(outcome.samples, f"league items {offset}-{offset + len(chunk) - 1}")
        rows: dict[int, tuple[Any, ...]] = {}
        season_items: list[tuple[int, Any]] = []
        for position, record in enumerate(records):
            if position in outcome.rejected:
                continue
            league_id, country_name = record["id"], record["country_name"]
            if league_id in rows:
                leagues.duplicates += 1
            base = slugify(f"{country_name} {record['name']}")
            slug = self.league_slugs.slug_for(league_id, base, str(league_id))
            rows[league_id] = (
                league_id,
                record["name"].strip(),
                record["type"],
                record["logo"],
                self.country_ids[country_name],
                slug,
            )
            season_items.extend((league_id, s) for s in seasons_of[position])
        season_rows, covered = self._season_rows(season_items)
        self._send_chunk(list(rows.values()), season_rows, covered)

    def _season_rows(
        self, season_items: list[tuple[int, Any]]
    ) -> tuple[list[tuple[Any, ...]], int]:
        """The valid seasons as rows of `_chunk_seasons` (one per league and year, each with
        its coverage flags, or NULLs when its coverage is invalid); and how many are covered."""
        seasons = self.report.tables["seasons"]
        league_ids: list[int] = []
        records: list[dict[str, Any]] = []
        seasons.fetched += len(season_items)
        for league_id, season in season_items:
            if isinstance(season, dict):
                league_ids.append(league_id)
                records.append(season)
                continue
            seasons.invalid += 1
            seasons.add_samples([_shape_sample(season, "a season object")], f"league {league_id}")
        if not records:
            return [], 0
        outcome = validate_records(schemas.SEASONS, records)
        seasons.invalid += len(outcome.rejected)
        seasons.add_samples(outcome.samples, "seasons")
        # The same year listed twice for a league: keep the current one, else the later listed.
        chosen: dict[tuple[int, int], tuple[tuple[Any, ...], Any]] = {}
        rejected = outcome.rejected
        for position, (league_id, season) in enumerate(zip(league_ids, records, strict=True)):
            if rejected and position in rejected:
                continue
            get = season.get
            key = (league_id, season["year"])
            current = season["current"]
            row = (league_id, key[1], parse_date(get("start")), parse_date(get("end")), current)
            if key in chosen:
                seasons.duplicates += 1
                if chosen[key][0][4] and not current:
                    continue
            chosen[key] = (row, get("coverage"))
        coverage = self.report.tables["season_coverage"]
        coverage.fetched += len(chosen)
        covers = [cover for _, cover in chosen.values()]
        outcome = validate_records(schemas.COVERAGES, covers)
        coverage.invalid += len(outcome.rejected)
        coverage.add_samples(outcome.samples, "season coverage")
        rejected = outcome.rejected
        rows = [
            (*row, *FIXTURE_FLAGS_OF(cover["fixtures"]), *SEASON_FLAGS_OF(cover))
            if not (rejected and position in rejected)
            else (*row, *NO_COVERAGE)
            for position, (row, cover) in enumerate(chosen.values())
        ]
        return rows, len(chosen) - len(rejected)

    def _send_chunk(
        self, league_rows: list[tuple[Any, ...]], season_rows: list[tuple[Any, ...]], covered: int
    ) -> None:
        """Stage the chunk's rows (once PostgreSQL is done with the chunk before) and send its
        upserts ahead."""
        self.ahead.settle()
        copy_rows(self.conn, CHUNK_LEAGUES, LEAGUE_COLUMNS, league_rows)
        copy_rows(self.conn, CHUNK_SEASONS, CHUNK_SEASON_COLUMNS, season_rows)
        for table, statement, rows in (
            ("leagues", UPSERT_CHUNK_LEAGUES, len(league_rows)),
            ("seasons", UPSERT_CHUNK_SEASONS, len(season_rows)),
            ("season_coverage", UPSERT_CHUNK_COVERAGE, covered),
        ):
            self.ahead.send(statement, then=self._written_to(table, rows))
        self.ahead.send(EMPTY_CHUNK_STAGES)

    def _written_to(self, table: str, rows: int) -> Callable[[psycopg.Cursor], None]:
        def add(cursor: psycopg.Cursor) -> None:
            self.report.tables[table].add_written(upserted_counts(rows, cursor.fetchone()))  # type: ignore[arg-type]

        return add

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
