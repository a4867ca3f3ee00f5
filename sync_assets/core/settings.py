"""Settings read from the environment at run time, never at import time."""

from __future__ import annotations

import os
from pathlib import Path


class MissingSettingError(RuntimeError):
    """A required environment variable is not set; the message says how to set it."""


def state_dir() -> Path:
    """Folder holding the embedded database and local buckets (`SYNC_ASSETS_HOME`)."""
    configured = os.environ.get("SYNC_ASSETS_HOME")
    base = Path(configured) if configured else Path.cwd() / ".sync_assets"
    base.mkdir(parents=True, exist_ok=True)
    return base.resolve()


def require_setting(name: str, how: str) -> str:
    """Return the value of `name`, or fail with one line naming it and how to set it."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise MissingSettingError(f"{name} is not set: {how}")
    return value


def optional_setting(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or default
