"""Object storage through fsspec: a local folder by default, any fsspec URL (s3://) in production."""

from __future__ import annotations

import os

import dagster as dg
import fsspec
from fsspec.spec import AbstractFileSystem

from sync_assets.core.settings import state_dir


class ObjectStorageResource(dg.ConfigurableResource):
    """Buckets under `OBJECT_STORAGE_URL` (default: `.sync_assets/storage`)."""

    url_setting: str = "OBJECT_STORAGE_URL"

    def root_url(self) -> str:
        configured = os.environ.get(self.url_setting, "").strip()
        return (configured or str(state_dir() / "storage")).rstrip("/")

    def filesystem(self) -> tuple[AbstractFileSystem, str]:
        """The fsspec filesystem and the root path inside it."""
        fs, root = fsspec.core.url_to_fs(self.root_url())
        return fs, root.rstrip("/")

    def bucket_path(self, bucket: str, *parts: str) -> str:
        fs, root = self.filesystem()
        return "/".join([root, bucket, *parts])
