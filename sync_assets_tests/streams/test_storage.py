"""The buckets' staging: what a run's cleanup removes, on a local folder and an object store."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import fsspec
import pytest

from sync_assets.core.settings import state_dir
from sync_assets.core.storage import ObjectStorageResource
from sync_assets.streams.storage import STAGING, STREAMS_BUCKET, Buckets, SourceUnusableError


def staged(buckets: Buckets, model_id: str) -> Path:
    """A staging folder as a run of `model_id` leaves it when it is killed."""
    with buckets.staging(model_id) as folder:
        pass
    folder.mkdir(parents=True)
    (folder / "valid.parquet").write_bytes(b"partial")
    return folder


@pytest.mark.parametrize("where", ["local", "remote"])
def test_leftovers_of_a_model_are_removed_and_no_other_models(
    tmp_path: Path, monkeypatch, where
) -> None:
    """Model ids may contain dots: clearing `a` keeps the staging of `a.b` and `ab`."""
    monkeypatch.setenv("SYNC_ASSETS_HOME", str(tmp_path / "home"))
    if where == "local":
        monkeypatch.setenv("OBJECT_STORAGE_URL", str(tmp_path / "storage"))
    else:
        root = f"memory://leftovers-{os.getpid()}-{time.monotonic_ns()}"
        monkeypatch.setenv("OBJECT_STORAGE_URL", root)
    buckets = Buckets.of(ObjectStorageResource())
    mine, dotted, prefixed = staged(buckets, "a"), staged(buckets, "a.b"), staged(buckets, "ab")
    removed_objects = kept_objects = []
    if where == "remote":
        memory = fsspec.filesystem("memory")
        prefix = f"{root}/{STREAMS_BUCKET}/{STAGING}"
        removed_objects = [f"{prefix}/a.{uuid.uuid4().hex}.parquet"]
        kept_objects = [f"{prefix}/a.b.{uuid.uuid4().hex}.parquet"]
        for name in removed_objects + kept_objects:
            memory.pipe(name, b"partial")
        assert mine.parent == state_dir() / "streams-staging"  # the local output folder

    assert buckets.clear_leftovers("a") == 1 + len(removed_objects)

    assert not mine.exists()
    assert (dotted / "valid.parquet").exists() and (prefixed / "valid.parquet").exists()
    if where == "remote":
        assert all(not memory.exists(n) for n in removed_objects)
        assert all(memory.exists(n) for n in kept_objects)


def test_a_relative_storage_folder_gives_absolute_parquet_urls(tmp_path: Path, monkeypatch) -> None:
    """`parquet_uri` is read by the app, which does not run in the sync's working folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OBJECT_STORAGE_URL", "storage/")
    buckets = Buckets.of(ObjectStorageResource())
    assert buckets.url(buckets.parquet_key("m")) == f"{tmp_path}/storage/streams/m.parquet"
    monkeypatch.setenv("OBJECT_STORAGE_URL", "memory://lake/root")
    assert Buckets.of(ObjectStorageResource()).url("streams/m.parquet") == (
        "memory://lake/root/streams/m.parquet"
    )


def test_a_folder_is_no_source_and_the_sensor_skips_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OBJECT_STORAGE_URL", str(tmp_path))
    (tmp_path / "sources" / "people").mkdir(parents=True)
    buckets = Buckets.of(ObjectStorageResource())
    with pytest.raises(SourceUnusableError, match="'sources/people' is a folder, not an object"):
        buckets.version("sources/people")
    assert buckets.fingerprint("sources/people") is None
