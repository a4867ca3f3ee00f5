"""Chunks of `/leagues` unchanged since the last sync: counted, not validated or written again.

A chunk (its leagues with their seasons and coverage) is skipped when all three hold:

1. its items are exactly those the last successful sync read at the same position (a digest of
   the parsed items and `WRITER_VERSION`);
2. nothing in the chunk was invalid (its samples are not kept; duplicates are, as counts);
3. the chunk's rows are still what that sync left: a digest PostgreSQL computes over them now
   equals the one computed right after they were written. A row edited, deleted or put back by
   hand since, a restored backup or another database makes the chunk be written again.

So a skipped chunk is one whose upsert would have found every row unchanged, and it is reported
with the counts its last write recorded. The digests of the
last sync are kept in its `leagues` materialization (Dagster's records), not in a table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from psycopg import sql

from sync_assets.football.schemas import COVERAGE_COLUMNS, is_id

# Bump whenever the rows written for the same items change (a new column, slugs made another
# way): the chunks recorded by older syncs then stop matching and are written again.
WRITER_VERSION = 1
METADATA_KEY = "chunk_digests"
# The tables a chunk writes; countries are written whole every sync.
COUNTED_TABLES = ("leagues", "seasons", "season_coverage")

# One line per league in id order, its seasons in year order; ROW(...)::text quotes values, so
# no two different contents print the same. The count tells a missing league from an empty one.
CONTENT_DIGEST = sql.SQL("""
WITH chunk_seasons AS (
    SELECT s.league_id,
           string_agg(ROW(s.year, s.start_date, s.end_date, s.current, {coverage})::text,
                      ';' ORDER BY s.year) AS seasons
    FROM seasons s LEFT JOIN season_coverage c ON c.season_id = s.id
    WHERE s.league_id = ANY(%(ids)s)
    GROUP BY s.league_id
)
SELECT count(*)::text || ':' || coalesce(md5(string_agg(
           ROW(l.id, l.name, l.type, l.logo, l.country_id, l.slug)::text
               || coalesce(cs.seasons, ''),
           E'\\n' ORDER BY l.id)), '')
FROM leagues l LEFT JOIN chunk_seasons cs ON cs.league_id = l.id
WHERE l.id = ANY(%(ids)s)
""").format(coverage=sql.SQL(", ").join(sql.Identifier("c", column) for column in COVERAGE_COLUMNS))


@dataclass(frozen=True)
class ChunkDigest:
    """A chunk as last written: its items' digest, its rows' digest, and per table the rows
    it fetched and the duplicates among them."""

    source: str
    content: str
    counts: dict[str, list[int]]


@dataclass
class ChunkDigests:
    """Per chunk of one sync, in order: its digests, or None when something in it was invalid."""

    chunk_size: int
    chunks: list[ChunkDigest | None] = field(default_factory=list)
    skipped: int = 0

    def add(self, digest: ChunkDigest | None) -> None:
        self.chunks.append(digest)

    def get(self, index: int) -> ChunkDigest | None:
        return self.chunks[index] if index < len(self.chunks) else None

    def as_metadata(self) -> dict[str, Any]:
        return {
            "writer_version": WRITER_VERSION,
            "chunk_size": self.chunk_size,
            "chunks": [[d.source, d.content, d.counts] if d else None for d in self.chunks],
        }

    @classmethod
    def from_metadata(cls, value: Any) -> ChunkDigests | None:
        """The digests a sync recorded; None when absent, from another writer or malformed."""
        if not isinstance(value, dict) or value.get("writer_version") != WRITER_VERSION:
            return None
        chunks = value.get("chunks")
        if not isinstance(chunks, list) or not isinstance(value.get("chunk_size"), int):
            return None
        digests = cls(value["chunk_size"])
        for entry in chunks:
            digests.add(_chunk_digest(entry))
        return digests


def _chunk_digest(entry: Any) -> ChunkDigest | None:
    if not isinstance(entry, list) or len(entry) != 3 or not isinstance(entry[2], dict):
        return None
    counts = entry[2]
    if not all(
        isinstance(counts.get(t), list)
        and len(counts[t]) == 2
        and all(isinstance(n, int) for n in counts[t])
        for t in COUNTED_TABLES
    ):
        return None
    return ChunkDigest(str(entry[0]), str(entry[1]), {t: counts[t] for t in COUNTED_TABLES})


def source_digest(chunk: Sequence[Any]) -> str | None:
    """A digest of the chunk's items as parsed; None when they cannot be serialized (integers
    beyond 64 bits, which also make the chunk invalid)."""
    try:
        text = orjson.dumps([WRITER_VERSION, chunk], option=orjson.OPT_SORT_KEYS, default=str)
    except orjson.JSONEncodeError:
        return None
    return hashlib.blake2b(text, digest_size=16).hexdigest()


def league_ids(chunk: Sequence[Any]) -> list[int] | None:
    """The chunk's league ids, or None unless every item has a valid one."""
    ids = []
    for item in chunk:
        league = item.get("league") if isinstance(item, dict) else None
        league_id = league.get("id") if isinstance(league, dict) else None
        if not is_id(league_id) or not isinstance(item.get("seasons"), list):
            return None
        ids.append(league_id)
    return ids


def content_digest(conn: psycopg.Connection, ids: list[int]) -> str:
    """A digest of the stored rows of these leagues: the league, its seasons and coverage."""
    return conn.execute(CONTENT_DIGEST, {"ids": ids}).fetchone()[0]  # type: ignore[index]
