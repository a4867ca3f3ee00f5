"""Which sandbox modules exist, and how to start them all with the settings that point at them.

Each module listed here may define:
- `providers(scale: float) -> list[Provider]`: HTTP stand-ins to mount;
- `environment(server_url: str) -> dict[str, str]`: settings that point the project at them;
- `seed_app_tables(scale: float) -> None`: fill the tables the app owns, in the database the
  domain is configured for (`database_url_for(...)`), idempotently.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import sync_assets.sandbox as sandbox_package
from sync_assets.sandbox.server import Provider, SandboxServer

# Every module in this package except the machinery itself is a provider stand-in.
_MACHINERY = {"server", "registry"}
SANDBOX_MODULES = tuple(
    sorted(
        info.name
        for info in pkgutil.iter_modules(sandbox_package.__path__)
        if info.name not in _MACHINERY and not info.name.startswith("_")
    )
)


def sandbox_modules() -> list[ModuleType]:
    return [importlib.import_module(f"sync_assets.sandbox.{name}") for name in SANDBOX_MODULES]


def build_sandbox(scale: float = 1.0, port: int = 0) -> SandboxServer:
    """A server with every provider stand-in mounted (not started yet)."""
    providers: list[Provider] = []
    for module in sandbox_modules():
        if hasattr(module, "providers"):
            providers.extend(module.providers(scale))
    return SandboxServer(providers, port=port)


def sandbox_environment(server_url: str) -> dict[str, str]:
    """Every setting that points the project at the sandbox (demo keys included)."""
    env: dict[str, str] = {}
    for module in sandbox_modules():
        if hasattr(module, "environment"):
            env.update(module.environment(server_url))
    return env


def seed_app_tables(scale: float = 1.0) -> None:
    """Create and fill the tables the apps own (club matches, user keys, data models...)."""
    for module in sandbox_modules():
        if hasattr(module, "seed_app_tables"):
            module.seed_app_tables(scale)
