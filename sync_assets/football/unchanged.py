"""Chunks of `/leagues` unchanged since the last sync: counted, not validated or written again.

A chunk (its leagues with their seasons and coverage) is skipped when all three hold:

1. its items are exactly those the last successful sync read at the same position (a digest of
   their text in the answer and `WRITER_VERSION`);
2. nothing in it was invalid then (its samples are not kept; duplicates are, as counts);
3. the rows of its range of league ids are still what that sync left: a digest PostgreSQL
   computes over them now equals the one computed right after the chunk was written. A row
   edited, deleted or put back by hand since, a restored backup or another database makes the
   chunk be written again.

So a skipped chunk is one whose upsert would have found every row unchanged, and it is reported
with the counts its last write recorded. When the whole `/leagues` answer is byte for byte the
last one and every chunk of it qualifies, nothing of it is even parsed (`ChunkDigests.answer`).
The digests of the last sync are kept in its `leagues` materialization (Dagster's records), not
in a table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import xxhash
from psycopg import sql

from sync_assets.football.schemas import COVERAGE_COLUMNS, is_id

# Bump whenever the rows written for the same items change (a new column, slugs made another
# way): the chunks recorded by older syncs then stop matching and are written again.
WRITER_VERSION = 3
METADATA_KEY = "chunk_digests"
# The tables a chunk writes; countries are written whole every sync.
COUNTED_TABLES = ("leagues", "seasons", "season_coverage")

# One line per league in id order, its seasons in year order; ROW(...)::text quotes values, so
# no two different contents print the same. The count tells a missing league from an empty one.
# A range of ids rather than the chunk's own: the check then needs no parse of the answer.
CONTENT_DIGEST = sql.SQL("""
WITH range_seasons AS (
    SELECT s.league_id,
           string_agg(ROW(s.year, s.start_date, s.end_date, s.current, {coverage})::text,
                      ';' ORDER BY s.year) AS seasons
    FROM seasons s LEFT JOIN season_coverage c ON c.season_id = s.id
    WHERE s.league_id BETWEEN %(first)s AND %(last)s
    GROUP BY s.league_id
)
SELECT count(*)::text || ':' || coalesce(md5(string_agg(
           ROW(l.id, l.name, l.type, l.logo, l.country_id, l.slug)::text
               || coalesce(rs.seasons, ''),
           E'\\n' ORDER BY l.id)), '')
FROM leagues l LEFT JOIN range_seasons rs ON rs.league_id = l.id
WHERE l.id BETWEEN %(first)s AND %(last)s
""").format(coverage=sql.SQL(", ").join(sql.Identifier("c", column) for column in COVERAGE_COLUMNS))


@dataclass(frozen=True)
class ChunkDigest:
    """A chunk as last written: its items' digest, its range of league ids, the digest of that
    range's rows, and per table the rows it fetched and the duplicates among them."""

    source: str
    first_id: int
    last_id: int
    content: str
    counts: dict[str, list[int]]

    def as_metadata(self) -> list[Any]:
        return [self.source, self.first_id, self.last_id, self.content, self.counts]

    @classmethod
    def from_metadata(cls, entry: Any) -> ChunkDigest | None:
        if not isinstance(entry, list) or len(entry) != 5:
            return None
        source, first_id, last_id, content, counts = entry
        if not (is_id(first_id) and is_id(last_id) and isinstance(counts, dict)):
            return None
        if not all(_is_count_pair(counts.get(t)) for t in COUNTED_TABLES):
            return None
        kept = {t: counts[t] for t in COUNTED_TABLES}
        return cls(str(source), first_id, last_id, str(content), kept)

    def still_stored(self, conn: psycopg.Connection) -> bool:
        """Whether the rows of the chunk's id range are what they were right after it was
        written."""
        return content_digest(conn, self.first_id, self.last_id) == self.content


def _is_count_pair(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(isinstance(n, int) for n in value)


@dataclass
class ChunkDigests:
    """Per chunk of one sync, in order: its digests, or None when something in it was invalid;
    and, when every chunk has them, the digest of the answer's bytes."""

    chunk_size: int
    chunks: list[ChunkDigest | None] = field(default_factory=list)
    answer: str | None = None
    skipped: int = 0
    answer_unchanged: bool = False

    def add(self, digest: ChunkDigest | None) -> None:
        self.chunks.append(digest)

    def get(self, index: int) -> ChunkDigest | None:
        return self.chunks[index] if index < len(self.chunks) else None

    def unchanged_answer(self, conn: psycopg.Connection, answer: str) -> list[ChunkDigest] | None:
        """Every chunk as recorded, when `answer` is the same answer as last time and every
        chunk of it was recorded and is still stored; else None."""
        recorded = [d for d in self.chunks if d is not None]
        if answer != self.answer or not recorded or len(recorded) != len(self.chunks):
            return None
        return recorded if all(d.still_stored(conn) for d in recorded) else None

    def as_metadata(self) -> dict[str, Any]:
        return {
            "writer_version": WRITER_VERSION,
            "chunk_size": self.chunk_size,
            "answer": self.answer,
            "chunks": [d.as_metadata() if d else None for d in self.chunks],
        }

    @classmethod
    def from_metadata(cls, value: Any) -> ChunkDigests | None:
        """The digests a sync recorded; None when absent, from another writer or malformed."""
        if not isinstance(value, dict) or value.get("writer_version") != WRITER_VERSION:
            return None
        chunks = value.get("chunks")
        if not isinstance(chunks, list) or not isinstance(value.get("chunk_size"), int):
            return None
        answer = value.get("answer")
        digests = cls(value["chunk_size"], answer=answer if isinstance(answer, str) else None)
        for entry in chunks:
            digests.add(ChunkDigest.from_metadata(entry))
        return digests


def answer_digest(pages: Iterable[Path]) -> str:
    """A digest of an answer's bytes, page by page (XXH3-128: 36 MB in about 20 ms)."""
    digest = xxhash.xxh3_128(str(WRITER_VERSION).encode())
    for page in pages:
        with page.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        digest.update(b"\x00page\x00")
    return digest.hexdigest()


def source_digest(texts: Sequence[str]) -> str:
    """A digest of a chunk's items as the answer wrote them (the text each was parsed from)."""
    digest = xxhash.xxh3_128(f"{WRITER_VERSION}".encode())
    for text in texts:
        # NUL cannot occur in JSON text, so the items' boundaries are part of the digest.
        digest.update(text.encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def league_id_range(chunk: Sequence[Any]) -> tuple[int, int] | None:
    """The smallest and largest league id of the chunk, or None unless every item has a valid
    one and a seasons list."""
    ids = []
    for item in chunk:
        league = item.get("league") if isinstance(item, dict) else None
        league_id = league.get("id") if isinstance(league, dict) else None
        if not is_id(league_id) or not isinstance(item.get("seasons"), list):
            return None
        ids.append(league_id)
    return (min(ids), max(ids)) if ids else None


def content_digest(conn: psycopg.Connection, first_id: int, last_id: int) -> str:
    """A digest of the stored leagues with ids from `first_id` to `last_id`, their seasons and
    coverage."""
    row = conn.execute(CONTENT_DIGEST, {"first": first_id, "last": last_id}).fetchone()
    return row[0]  # type: ignore[index]
