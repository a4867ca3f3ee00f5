"""Users' Torn API keys: read from the app's `user_keys` table and decrypted for one run.

`user_keys.api_key` is AES-256-GCM ciphertext written by the Node app as hex
`iv:authTag:ciphertext` (12- or 16-byte IV); `ENCRYPTION_KEY` is its 32-byte key in hex. A key
that will not decrypt fails only its user, with a reason that says why (never what it was).
Every decrypted key is registered with `register_secret` before anything can print it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import dagster as dg
import psycopg
from pydantic import Field

from sync_assets.core.crypto import DecryptionError, decrypt, parse_key
from sync_assets.core.redaction import register_secret
from sync_assets.core.settings import require_setting

# Keys decrypted and registered for redaction at once. Registering rebuilds one regex of every
# secret (~0.1 ms per key), which is slow under the GIL once the fetch threads run: a batch this
# size registers a typical user base in one go, before the first request.
DECRYPT_BATCH = 5000
# Torn keys are 16 letters and digits; anything printable without spaces is let through to the
# API (which answers "Incorrect key" if it is wrong), but not an empty or binary value.
_PLAUSIBLE_KEY = re.compile(r"[\x21-\x7e]{4,256}")


class UserKeysTableMissing(RuntimeError):
    """The app's `user_keys` table is not where the Postgres resource looks for it."""


@dataclass(frozen=True)
class UserItem:
    """One user to sync. Printing it shows only the user id: the key never leaves this object."""

    user_id: str
    key: str | None = field(default=None, repr=False, compare=False, hash=False)
    problem: str | None = field(default=None, compare=False, hash=False)

    def __str__(self) -> str:
        return self.user_id


class UserKeyCipherResource(dg.ConfigurableResource):
    """Decrypts `user_keys.api_key`. The field names the setting holding the key, not the key."""

    key_setting: str = Field(
        default="ENCRYPTION_KEY", description="Setting with the 64-hex-character AES-256 key."
    )

    def key(self) -> bytes:
        """The AES key; a missing or malformed setting fails with one line naming it."""
        value = require_setting(
            self.key_setting,
            "export it with the 64 hex characters the app encrypts user_keys.api_key with",
        )
        register_secret(value, value.lower(), value.upper())
        return parse_key(value)


def open_key(user_id: str, ciphertext: str | None, key: bytes) -> UserItem:
    """Decrypt one stored key; a failure is kept on the item as its `problem`."""
    try:
        plain = decrypt(ciphertext or "", key).strip()
    except DecryptionError as exc:
        return UserItem(user_id, problem=f"decrypt_failed: {exc}")
    if not _PLAUSIBLE_KEY.fullmatch(plain):
        return UserItem(
            user_id,
            problem="decrypt_failed: the decrypted value is not an API key "
            "(empty, spaces or unprintable characters)",
        )
    return UserItem(user_id, key=plain)


def count_users(conn: psycopg.Connection) -> int:
    _require_table(conn)
    return conn.execute("SELECT count(DISTINCT user_id) FROM user_keys").fetchone()[0]  # type: ignore[index]


def iter_user_items(conn: psycopg.Connection, key: bytes) -> Iterator[UserItem]:
    """Every user's newest key, decrypted a batch at a time (memory stays flat).

    A user with several keys is synced with the newest one (by `created_at`, then `id`).
    """
    _require_table(conn)
    with conn.transaction(), conn.cursor(name="torn_user_keys") as cursor:
        cursor.itersize = DECRYPT_BATCH
        cursor.execute(
            "SELECT DISTINCT ON (user_id) user_id::text, api_key FROM user_keys"
            " WHERE user_id IS NOT NULL"
            " ORDER BY user_id, created_at DESC NULLS LAST, id DESC"
        )
        rows = iter(cursor)
        while batch := list(itertools.islice(rows, DECRYPT_BATCH)):
            items = [open_key(user_id, api_key, key) for user_id, api_key in batch]
            register_secret(*(item.key for item in items if item.key))  # one rebuild a batch
            yield from items


def _require_table(conn: psycopg.Connection) -> None:
    found = conn.execute("SELECT to_regclass('user_keys') IS NOT NULL").fetchone()[0]  # type: ignore[index]
    if not found:
        path = conn.execute("SHOW search_path").fetchone()[0]  # type: ignore[index]
        raise UserKeysTableMissing(
            f"table user_keys not found (search_path: {path}); it belongs to the app: point "
            "TORN_DATABASE_URL or DATABASE_URL at the app's database"
        )
