"""Decrypting the app's keys: Node-made ciphertext, both IV lengths, and every way it can fail."""

from __future__ import annotations

import json
import shutil
import subprocess

import psycopg
import pytest

from sync_assets.core.crypto import DecryptionError, decrypt, parse_key
from sync_assets.core.settings import MissingSettingError
from sync_assets.sandbox import torn as sandbox
from sync_assets.torn.keys import UserKeyCipherResource, open_key
from sync_assets_tests.torn.conftest import failure_text, metadata, query, seed, sync

HEX_KEY = "8f" * 16 + "1a2b3c4d" * 4
KEY = parse_key(HEX_KEY)

NODE_ENCRYPT = """
const crypto = require("crypto");
const [hexKey, plaintext] = process.argv.slice(1);
const out = {};
for (const ivBytes of [12, 16]) {
  const iv = crypto.randomBytes(ivBytes);
  const cipher = crypto.createCipheriv("aes-256-gcm", Buffer.from(hexKey, "hex"), iv);
  let encrypted = cipher.update(plaintext, "utf8", "hex");
  encrypted += cipher.final("hex");
  out[ivBytes] = `${iv.toString("hex")}:${cipher.getAuthTag().toString("hex")}:${encrypted}`;
}
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def node_ciphertexts() -> dict[str, str]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the format test needs Node's crypto")
    output = subprocess.run(
        [node, "-e", NODE_ENCRYPT, HEX_KEY, "NodeMadeKey12345"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    return json.loads(output)


@pytest.mark.parametrize("iv_bytes", ["12", "16"])
def test_a_key_encrypted_by_node_decrypts(node_ciphertexts, iv_bytes) -> None:
    value = node_ciphertexts[iv_bytes]
    assert len(value.split(":")[0]) == int(iv_bytes) * 2
    assert decrypt(value, KEY) == "NodeMadeKey12345"
    item = open_key("u1", value, KEY)
    assert (item.key, item.problem) == ("NodeMadeKey12345", None)


def test_the_sandbox_encrypts_the_way_the_app_does() -> None:
    demo = parse_key(sandbox.DEMO_ENCRYPTION_KEY)
    ivs = set()
    for index in range(4):
        stored = sandbox.stored_key_at(index)
        ivs.add(len(stored.split(":")[0]) // 2)
        assert decrypt(stored, demo) == sandbox.api_key_at(index)
        assert stored == sandbox.stored_key_at(index)  # deterministic seed
    assert ivs == {12, 16}


def test_wrong_key_and_tampered_tag_fail_with_a_reason(node_ciphertexts) -> None:
    other = parse_key("00" * 32)
    wrong = open_key("u1", node_ciphertexts["12"], other)
    assert wrong.key is None
    assert wrong.problem == (
        "decrypt_failed: authentication failed: wrong ENCRYPTION_KEY or tampered ciphertext"
    )
    iv, tag, ciphertext = node_ciphertexts["16"].split(":")
    flipped = f"{iv}:{tag[:-1]}{'0' if tag[-1] != '0' else '1'}:{ciphertext}"
    tampered = open_key("u1", flipped, KEY)
    assert tampered.key is None and "tampered" in (tampered.problem or "")
    body = f"{iv}:{tag}:{ciphertext[:-2]}{'00' if ciphertext[-2:] != '00' else '11'}"
    assert "authentication failed" in (open_key("u1", body, KEY).problem or "")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "expected iv:authTag:ciphertext, got 1 part"),
        (None, "expected iv:authTag:ciphertext, got 1 part"),
        ("plain-text-key", "got 1 part"),
        ("aa:bb", "got 2 part"),
        ("zz" * 12 + ":" + "00" * 16 + ":abcd", "a part is not hex"),
        ("00" * 8 + ":" + "00" * 16 + ":abcd", "IV is 8 bytes"),
        ("00" * 12 + ":" + "00" * 8 + ":abcd", "auth tag is 8 bytes"),
        ("00" * 12 + ":" + "00" * 16 + ":", "empty ciphertext"),
    ],
)
def test_malformed_values_fail_with_a_reason(value, reason) -> None:
    item = open_key("u9", value, KEY)
    assert item.key is None
    assert item.problem is not None and item.problem.startswith("decrypt_failed: malformed")
    assert reason in item.problem
    assert str(item) == "u9"


def test_a_decrypted_value_that_is_not_a_key_is_refused() -> None:
    from sync_assets.core.crypto import encrypt

    item = open_key("u1", encrypt("two words", KEY), KEY)
    assert item.key is None and "not an API key" in (item.problem or "")
    with pytest.raises(DecryptionError):
        decrypt("00:11", KEY)


def test_encryption_key_missing_or_malformed_fails_in_one_line(monkeypatch) -> None:
    monkeypatch.delenv("ENCRYPTION_KEY", raising=False)
    with pytest.raises(MissingSettingError, match="^ENCRYPTION_KEY is not set: export it"):
        UserKeyCipherResource().key()
    monkeypatch.setenv("ENCRYPTION_KEY", "abcd")
    with pytest.raises(DecryptionError, match="ENCRYPTION_KEY is 2 bytes; AES-256 needs 32"):
        UserKeyCipherResource().key()


def test_bad_ciphertexts_fail_only_their_users(torn, database_url) -> None:
    seed(database_url, range(10), tampered=[3])
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE torn.user_keys SET api_key = 'not-encrypted' WHERE user_id = %s",
            (sandbox.user_id_at(5),),
        )
    meta = metadata(sync())
    assert (meta["users_succeeded"], meta["users_failed"]) == (8, 2)
    assert meta["failed_by_reason"] == {"decrypt_failed": 2}
    failed = meta["failed_users"]["decrypt_failed"]
    assert sorted(failed["user_ids"]) == sorted([sandbox.user_id_at(3), sandbox.user_id_at(5)])
    assert len(torn.recorded(sandbox.PREFIX)) == 8  # no call without a key
    stored = {r[0] for r in query(database_url, "SELECT user_id FROM user_data")}
    assert sandbox.user_id_at(3) not in stored and len(stored) == 8


def test_a_wrong_encryption_key_fails_the_run_loudly(torn, database_url, monkeypatch) -> None:
    seed(database_url, range(6))
    monkeypatch.setenv("ENCRYPTION_KEY", "11" * 32)
    result = sync(raise_on_error=False)
    assert not result.success
    text = failure_text(result)
    assert "every user failed (6 of 6)" in text
    assert "decrypt_failed 6 (authentication failed: wrong ENCRYPTION_KEY" in text
    assert torn.recorded(sandbox.PREFIX) == []
    assert query(database_url, "SELECT count(*) FROM user_data") == [(0,)]
