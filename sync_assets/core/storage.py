"""Object storage through fsspec: a local folder by default, any fsspec URL (s3://) in production."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import fsspec
from fsspec.spec import AbstractFileSystem

from sync_assets.core.settings import state_dir


class ObjectStorageResource(dg.ConfigurableResource):
    """Buckets under `OBJECT_STORAGE_URL` (default: `.sync_assets/storage`)."""

    url_setting: str = "OBJECT_STORAGE_URL"

    def root_url(self) -> str:
        """The buckets' root; a plain folder is made absolute, as the app reads the Parquet URLs
        written from it (`parquet_uri`) from wherever it runs."""
        configured = os.environ.get(self.url_setting, "").strip()
        if configured and "://" not in configured:
            configured = str(Path(configured).expanduser().absolute())
        return (configured or str(state_dir() / "storage")).rstrip("/")

    def filesystem(self) -> tuple[AbstractFileSystem, str]:
        """The fsspec filesystem and the root path inside it."""
        fs, root = fsspec.core.url_to_fs(self.root_url())
        return fs, root.rstrip("/")

    def bucket_path(self, bucket: str, *parts: str) -> str:
        fs, root = self.filesystem()
        return "/".join([root, bucket, *parts])
