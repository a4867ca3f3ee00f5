"""Object storage failing mid-publish: a local bucket whose disk fills up while the Parquet is
written, and an fsspec store whose upload or server-side copy fails. The published Parquet of
the last sync survives whole, the run and its request fail saying why, and the next run (space
or the store back) publishes in full and leaves no staging behind."""

from __future__ import annotations

import errno
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import fsspec
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from sync_assets.streams.assets import RETRY_POLICY
from sync_assets_tests.streams.conftest import CSV, Streams, metadata_of

ATTEMPTS = RETRY_POLICY.max_retries + 1
NO_SPACE = "No space left on device"
REQUEST_ROW = "SELECT status, attempts, error FROM streams.stream_sync_jobs WHERE id = %s"
MODEL_ROW = "SELECT row_count, synced_at FROM streams.data_models WHERE id = 'people'"


def big_csv(rows: int) -> str:
    """A source whose Parquet is far bigger than the few kilobytes the full disk has left."""
    lines = [CSV.splitlines()[0]]
    for i in range(rows):
        lines.append(f"{i},{uuid.UUID(int=i * 7919).hex},{i / 3},true,2024-01-02,2024-01-02")
    return "\n".join(lines) + "\n"


def failure_description(result) -> str:
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return failure.step_failure_data.user_failure_data.description


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on its own 4 MB tmpfs, unmounted afterwards (needs root, as this machine is)."""
    mount_point = tmp_path / "small_disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"a size-limited tmpfs cannot be mounted here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def fill(folder: Path, leave: int) -> Path:
    """Fill the disk under `folder` until fewer than `leave` bytes are free."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    os.truncate(filler, filler.stat().st_size - leave)
    return filler


def test_a_disk_that_fills_up_mid_write_keeps_the_old_parquet(
    streams: Streams, instance, small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    streams.root = small_disk  # the bucket, and the staging folder inside it, on the small disk
    monkeypatch.setenv("OBJECT_STORAGE_URL", str(small_disk))
    streams.write("sources/people.csv", CSV)
    streams.model("people", "csv")
    streams.materialize("people", instance)
    old = streams.parquet("people").read_bytes()
    [recorded] = streams.query(MODEL_ROW)

    streams.write("sources/people.csv", big_csv(20_000))
    filler = fill(small_disk, leave=16 * 1024)
    request = streams.request("people")
    tags = {"sync_assets/stream_sync_job_id": str(request)}
    failed = streams.materialize("people", instance, tags=tags, raise_on_error=False)
    assert not failed.success
    message = failure_description(failed)
    assert "cannot write its Parquet to the staging folder: No space left on device" in message
    assert "source" not in message  # the source is fine: the disk is not
    assert streams.parquet("people").read_bytes() == old
    assert streams.query(MODEL_ROW) == [recorded]
    [(status, attempts, error)] = streams.query(REQUEST_ROW, (request,))
    assert (status, attempts) == ("failed", ATTEMPTS) and NO_SPACE in error
    assert not any((small_disk / "streams" / ".staging").iterdir())  # each attempt cleaned up

    filler.unlink()
    meta = metadata_of(streams.materialize("people", instance))
    assert meta["rows_written"] == 20_000 and len(streams.rows("people")) == 20_000
    assert streams.query(MODEL_ROW)[0][0] == 20_000


class FailingStore(MemoryFileSystem):
    """fsspec's in-memory store standing in for S3, whose upload stops part-way ("put") or whose
    server-side copy fails ("copy") while `fault` is set."""

    protocol = ("failingstore",)
    store: ClassVar[dict] = {}
    pseudo_dirs: ClassVar[list] = [""]
    fault: ClassVar[str | None] = None

    @classmethod
    def _strip_protocol(cls, path):
        if isinstance(path, str):
            path = path.removeprefix("failingstore://")
        return super()._strip_protocol(path)

    def put_file(self, lpath, rpath, **kwargs) -> None:
        if FailingStore.fault != "put":
            return super().put_file(lpath, rpath, **kwargs)
        with open(lpath, "rb") as source, self.open(rpath, "wb") as target:
            target.write(source.read(1000))  # a part of the object arrived
            raise OSError(errno.ENOSPC, f"{NO_SPACE} (the store is full, injected)")

    def cp_file(self, path1, path2, **kwargs) -> None:
        if FailingStore.fault == "copy":
            raise OSError(errno.EIO, "server-side copy failed (injected)")
        return super().cp_file(path1, path2, **kwargs)


@pytest.fixture
def failing_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MemoryFileSystem, str]]:
    fsspec.register_implementation("failingstore", FailingStore, clobber=True)
    root = f"failingstore://bucket-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("OBJECT_STORAGE_URL", root)
    store = fsspec.filesystem("failingstore")
    yield store, root
    FailingStore.fault = None
    store.rm(root.removeprefix("failingstore://"), recursive=True)


@pytest.mark.parametrize(
    ("fault", "says"),
    [("put", NO_SPACE), ("copy", "server-side copy failed")],
    ids=["upload", "copy"],
)
def test_a_store_write_failing_mid_publish_keeps_the_old_parquet(
    streams: Streams, instance, failing_store, fault: str, says: str
) -> None:
    store, root = failing_store
    bucket = root.removeprefix("failingstore://")
    published = f"{bucket}/streams/people.parquet"
    store.pipe_file(f"{bucket}/sources/people.csv", CSV.encode())
    streams.model("people", "csv")
    streams.materialize("people", instance)
    old = store.cat_file(published)

    store.pipe_file(f"{bucket}/sources/people.csv", big_csv(50).encode())
    FailingStore.fault = fault
    failed = streams.materialize("people", instance, raise_on_error=False)
    assert not failed.success
    assert says in failure_description(failed)
    assert store.cat_file(published) == old

    FailingStore.fault = None
    meta = metadata_of(streams.materialize("people", instance))
    assert meta["rows_written"] == 50
    with store.open(published, "rb") as handle:
        assert pq.read_table(handle).num_rows == 50
    assert store.ls(f"{bucket}/streams/.staging", detail=False) == []
