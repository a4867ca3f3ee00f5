"""Shared helpers for the benchmarks: result lines, peak memory, a sandbox in its own process,
scratch databases on the embedded server."""

from __future__ import annotations

import atexit
import json
import os
import resource
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SANDBOX = """
import importlib, sys
from sync_assets.sandbox.server import SandboxServer
module = importlib.import_module("sync_assets.sandbox." + sys.argv[1])
server = SandboxServer(module.providers(1.0))
print(server.url, flush=True)
server.serve_forever()
"""


def report(name: str, value: float, unit: str, ratio: float | None = None) -> None:
    """Print `name  value  unit  ratio-to-limit` (ratio blank when there is no limit)."""
    ratio_text = f"{ratio:.2f}" if ratio is not None else "-"
    print(f"{name:<44} {value:>14.2f}  {unit:<10} {ratio_text}", flush=True)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_home() -> Path:
    home = Path(os.environ.get("SYNC_ASSETS_HOME", Path.cwd() / ".sync_assets" / "bench"))
    home.mkdir(parents=True, exist_ok=True)
    os.environ["SYNC_ASSETS_HOME"] = str(home)
    return home


def start_sandbox(module: str) -> tuple[subprocess.Popen, str]:
    """Serve `sync_assets.sandbox.<module>` in its own process (so its threads do not compete
    with the measured ones for the GIL); return the process and its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SANDBOX, module], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    return proc, proc.stdout.readline().strip()  # type: ignore[union-attr]


def configure_sandbox(url: str, prefix: str, settings: dict, timeout: float = 60) -> None:
    """POST `settings` to the sandbox provider mounted at `prefix`."""
    request = urllib.request.Request(
        f"{url}/_sandbox/config/{prefix.strip('/')}",
        data=json.dumps(settings).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=timeout).read()


def fresh_database(prefix: str) -> str:
    """Create an empty database `<prefix>_<random>` on the embedded server; return its URL.
    It is dropped when the bench process exits (earlier with `drop_database`)."""
    import psycopg
    from psycopg import sql

    from sync_assets.core.embedded import embedded_database_url

    server = embedded_database_url("postgres")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = server.replace("@/postgres?", f"@/{name}?", 1)
    atexit.register(drop_database, url)
    return url


def drop_database(url: str) -> None:
    """Drop a database `fresh_database` made (its sessions are ended first)."""
    import psycopg
    from psycopg import sql

    from sync_assets.core.embedded import embedded_database_url

    name = url.split("@/", 1)[1].split("?", 1)[0]
    with psycopg.connect(embedded_database_url("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
