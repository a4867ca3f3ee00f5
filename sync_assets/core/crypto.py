"""AES-256-GCM decryption of `iv:authTag:ciphertext` hex strings written by Node's crypto."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

TAG_BYTES = 16
IV_BYTES = (12, 16)


class DecryptionError(ValueError):
    """A value could not be decrypted; the message says why, never what the value was."""


def parse_key(hex_key: str) -> bytes:
    """A 32-byte key from 64 hex characters."""
    try:
        key = bytes.fromhex(hex_key.strip())
    except ValueError:
        raise DecryptionError("ENCRYPTION_KEY is not hex (expected 64 hex characters)") from None
    if len(key) != 32:
        raise DecryptionError(
            f"ENCRYPTION_KEY is {len(key)} bytes; AES-256 needs 32 (64 hex characters)"
        )
    return key


def encrypt(plaintext: str, key: bytes, *, iv_bytes: int = 12) -> str:
    """Encrypt the way the Node app does: hex `iv:authTag:ciphertext`."""
    iv = os.urandom(iv_bytes)
    sealed = AESGCM(key).encrypt(iv, plaintext.encode(), None)
    ciphertext, tag = sealed[:-TAG_BYTES], sealed[-TAG_BYTES:]
    return f"{iv.hex()}:{tag.hex()}:{ciphertext.hex()}"


def decrypt(value: str, key: bytes) -> str:
    """Decrypt hex `iv:authTag:ciphertext` (12- or 16-byte IV, 16-byte tag)."""
    parts = (value or "").strip().split(":")
    if len(parts) != 3:
        raise DecryptionError(
            f"malformed ciphertext: expected iv:authTag:ciphertext, got {len(parts)} part(s)"
        )
    try:
        iv, tag, ciphertext = (bytes.fromhex(p) for p in parts)
    except ValueError:
        raise DecryptionError("malformed ciphertext: a part is not hex") from None
    if len(iv) not in IV_BYTES:
        raise DecryptionError(f"malformed ciphertext: IV is {len(iv)} bytes, expected 12 or 16")
    if len(tag) != TAG_BYTES:
        raise DecryptionError(f"malformed ciphertext: auth tag is {len(tag)} bytes, expected 16")
    if not ciphertext:
        raise DecryptionError("malformed ciphertext: empty ciphertext")
    try:
        plain = AESGCM(key).decrypt(iv, ciphertext + tag, None)
    except InvalidTag:
        raise DecryptionError(
            "authentication failed: wrong ENCRYPTION_KEY or tampered ciphertext"
        ) from None
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise DecryptionError("decrypted value is not UTF-8 text") from None
