"""Writing one API-Football sync into the football schema, in the caller's transaction.

Countries first (the `/countries` list, then any country only a league names), then the leagues
in chunks, each chunk's leagues, seasons and coverage together, so memory stays flat however
many leagues come. Bad items are dropped, counted and sampled per table; above the threshold
the caller's transaction is rolled back and nothing is written.
"""

from __future__ import annotations

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

from sync_assets.core.postgres import PostgresResource
from sync_assets.core.redaction import redact
from sync_assets.core.upsert import UpsertCounts, upsert_rows
from sync_assets.core.validation import SAMPLE_SIZE, TooManyInvalidError, validate_records
from sync_assets.football import schemas, unchanged
from sync_assets.football.schemas import parse_date

TABLES = ("countries", "leagues", "seasons", "season_coverage")
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
        existing = conn.execute("SELECT name, id, slug FROM countries").fetchall()
        self.country_ids: dict[str, int] = {name: cid for name, cid, _ in existing}
        self.country_slugs = _Slugs({name: slug for name, _, slug in existing}, "country")
        self.league_slugs = _Slugs(
            dict(conn.execute("SELECT id, slug FROM leagues").fetchall()), "league"
        )

    # countries -------------------------------------------------------------------------------
    def write_countries(self, items: Iterable[Any], *, source: str = "/countries") -> None:
        """Validate and upsert countries (all of `/countries`: a few hundred at most)."""
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
    def write_leagues(self, items: Iterable[Any], expected: int) -> None:
        """Validate and upsert league items chunk by chunk, with their seasons and coverage.

        `expected` (the number of items in the answer) lets the sync stop as soon as the
        invalid leagues already exceed the threshold.
        """
        iterator = iter(items)
        position = 0
        while chunk := list(itertools.islice(iterator, self.chunk_size)):
            self._write_or_skip_chunk(chunk, position)
            position += len(chunk)
            leagues = self.report.tables["leagues"]
            if expected and leagues.invalid > self.threshold * expected:
                raise TooManyInvalidError(
                    f"leagues: {leagues.invalid} of {expected} items invalid already (more than "
                    f"{self.threshold:.0%}); stopped, nothing was written. "
                    f"Samples: {leagues.samples[:3]}"
                )
            self.progress(f"{position} of {expected or '?'} leagues written")

    def _write_or_skip_chunk(self, chunk: list[Any], offset: int) -> None:
        source = unchanged.source_digest(chunk)
        id_range = unchanged.league_id_range(chunk)
        recorded = self.previous.get(len(self.digests.chunks)) if self.previous else None
        if (
            recorded is not None
            and source == recorded.source
            and id_range == (recorded.first_id, recorded.last_id)
            and recorded.still_stored(self.conn)
        ):
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
        if valid and source is not None and id_range is not None:
            content = unchanged.content_digest(self.conn, *id_range)
            self.digests.add(unchanged.ChunkDigest(source, *id_range, content, counts))
        else:
            self.digests.add(None)

    def write_leagues_or_count_unchanged(
        self, items: Iterable[Any], expected: int, answer: str
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
            return
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
        seasons.add_written(
            upsert_rows(
                self.conn,
                "seasons",
                ["league_id", "year", "start_date", "end_date", "current"],
                (row for row, _ in chosen.values()),
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
        self._write_coverage([(ids[key], cover) for key, (_, cover) in chosen.items()])

    def _write_coverage(self, items: list[tuple[int, Any]]) -> None:
        report = self.report.tables["season_coverage"]
        report.fetched += len(items)
        covers = [cover for _, cover in items]
        outcome = validate_records(schemas.COVERAGES, covers)
        report.invalid += len(outcome.rejected)
        report.add_samples(outcome.samples, "season coverage")
        written = (
            (season_id, *FIXTURE_FLAGS_OF(cover["fixtures"]), *SEASON_FLAGS_OF(cover))
            for position, (season_id, cover) in enumerate(items)
            if position not in outcome.rejected
        )
        report.add_written(
            upsert_rows(
                self.conn,
                "season_coverage",
                ["season_id", *schemas.COVERAGE_COLUMNS],
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
