"""The recorded Torn answers in shared/reference/torn/, replayed through the whole asset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sync_assets.sandbox import torn as sandbox
from sync_assets_tests.torn.conftest import configure, metadata, query, seed, sync

# Copied from shared/reference/ (real provider answers) so the tests run in any checkout.
REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "torn"


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="shared/reference/torn is not beside the repo")
def test_recorded_answers_are_stored_or_fail_with_their_code(torn, database_url) -> None:
    bodies = {
        path.name: json.loads(path.read_text(encoding="utf-8-sig"))
        for path in sorted(REFERENCE.glob("*.json"))
    }
    profile = bodies["user_basic_okay__jgolla-torn-api.json"]
    incorrect = bodies["error_code2_incorrect-key__jgolla-torn-api.json"]
    wrong_fields = bodies["error_code4_wrong-fields__daanjo3-torn-api-client.json"]
    seed(database_url, range(3))
    configure(torn, answers={"0": profile, "1": incorrect, "2": wrong_fields})
    meta = metadata(sync())
    assert meta["failed_by_reason"] == {"key_incorrect": 1, "wrong_fields": 1}
    assert meta["failed_users"]["key_incorrect"]["example"] == "Torn error 2 (Incorrect key)"
    assert meta["failed_users"]["wrong_fields"]["user_ids"] == [sandbox.user_id_at(2)]
    assert query(
        database_url,
        "SELECT user_id, name, player_id, level, gender, status_state, status_description"
        " FROM user_data",
    ) == [(sandbox.user_id_at(0), "jgolla", 2491575, 80, "Female", "Okay", "Okay")]
