"""A Redis server the project starts itself (tests, benches, `sync-assets dev --celery`).

Debian's `redis-server` on a free loopback port, its files in a temporary folder, no
persistence; `stop()` shuts it down and removes the folder. Production points
SYNC_ASSETS_BROKER_URL at a managed Redis instead.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

BROKER_SETTING = "SYNC_ASSETS_BROKER_URL"
RATE_LIMIT_SETTING = "SYNC_ASSETS_RATE_LIMIT_URL"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalRedis:
    """`redis-server` on 127.0.0.1; `url` is its redis:// URL once started."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="sync_assets_redis_"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0) -> LocalRedis:
        """Start the server (again, on the same port after `stop(keep_folder=True)`)."""
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError(
                "redis-server is not installed: `make redis` (or apt-get install redis-server)"
            )
        self.process = subprocess.Popen(
            [
                executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
                "--logfile",
                str(self.folder / "redis.log"),
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.folder / "redis.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}: {log}")
            time.sleep(0.05)
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, keep_folder: bool = False) -> None:
        """Shut the server down (SIGTERM, then SIGKILL); remove its folder unless kept."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if not keep_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
