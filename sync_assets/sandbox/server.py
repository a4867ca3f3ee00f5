"""The sandbox HTTP server: provider stand-ins mounted under path prefixes, plus fault injection.

Every provider is a `Provider` mounted at a prefix (`/football`, `/steam-store`, ...). Faults are
rules matched on the path; tests (in-process or in another process) set them through
`POST /_sandbox/faults` and read what the server saw through `GET /_sandbox/requests`.
A provider's rate limit (`limit_rate`, or `POST /_sandbox/rate_limit`) admits `requests` per
sliding window of `seconds` on a path prefix and answers 429 (`Retry-After: 1`) above it.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    @classmethod
    def json(
        cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> Response:
        return cls(
            status=status,
            body=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
        )


class Provider:
    """One stand-in service. Subclasses set `prefix` and implement `handle`."""

    prefix: str = ""

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    def configure(self, settings: dict[str, Any]) -> None:
        """Change scale or behaviour at run time (POST /_sandbox/config/<prefix>)."""


@dataclass
class FaultRule:
    """Answer `count` requests whose path starts with `path` with a fault instead of the data.

    kind: status (HTTP `status`, optional `retry_after` header), slow (`delay` seconds, then the
    real answer), malformed (a truncated JSON body with HTTP 200; `body`, a string, replaces the
    default one), body (HTTP 200 with `body`),
    drop (close the connection without an answer).
    """

    path: str
    kind: str
    count: int = 1
    status: int = 500
    retry_after: str | None = None
    delay: float = 0.0
    body: Any = None
    skip: int = 0

    def response(self) -> Response | None:
        if self.kind == "status":
            headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
            payload = self.body if self.body is not None else {"message": "injected fault"}
            return Response.json(payload, status=self.status, headers=headers)
        if self.kind == "malformed":
            text = self.body if isinstance(self.body, str) else '{"get": "truncated", "response": ['
            return Response(200, text.encode(), {"Content-Type": "application/json"})
        if self.kind == "body":
            return Response.json(self.body)
        return None


class FaultBook:
    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def set(self, rules: list[dict[str, Any]]) -> None:
        with self._lock:
            self._rules = [FaultRule(**r) for r in rules]

    def add(self, **rule: Any) -> None:
        with self._lock:
            self._rules.append(FaultRule(**rule))

    def clear(self) -> None:
        self.set([])

    def take(self, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self._rules:
                if path.startswith(rule.path) and rule.count != 0:
                    if rule.skip > 0:
                        rule.skip -= 1
                        return None
                    if rule.count > 0:
                        rule.count -= 1
                    return rule
        return None


class RateLimit:
    """At most `requests` answers per sliding window of `seconds` on paths under `path`."""

    def __init__(self, path: str, requests: int, seconds: float = 1.0) -> None:
        self.path = path
        self.requests = requests
        self.seconds = seconds
        self.admitted: deque[float] = deque()
        self.refused = 0
        self.lock = threading.Lock()

    def admit(self, path: str) -> bool:
        if not path.startswith(self.path):
            return True
        now = time.monotonic()
        with self.lock:
            while self.admitted and self.admitted[0] <= now - self.seconds:
                self.admitted.popleft()
            if len(self.admitted) < self.requests:
                self.admitted.append(now)
                return True
            self.refused += 1
            return False


class _QuietOnHangUpServer(ThreadingHTTPServer):
    """A client that hangs up before its answer is written (it timed out on a slow fault, or
    stopped reading) is routine for a stand-in: not a traceback on stderr, where it lands in
    whatever test shares the process."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class SandboxServer:
    """A ThreadingHTTPServer on 127.0.0.1 serving every registered provider."""

    def __init__(self, providers: list[Provider], host: str = "127.0.0.1", port: int = 0) -> None:
        self.providers = {p.prefix: p for p in providers}
        self.faults = FaultBook()
        self.rate_limits: list[RateLimit] = []
        self.requests: deque[dict[str, Any]] = deque(maxlen=50_000)
        self._requests_lock = threading.Lock()
        handler = self._handler_class()
        self.httpd = _QuietOnHangUpServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 256
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def base_url(self, prefix: str) -> str:
        return self.url + prefix

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def record(self, request: Request, status: int) -> None:
        with self._requests_lock:
            self.requests.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "query": request.query,
                    "headers": request.headers,
                    "body": request.body.decode("utf-8", "replace"),
                    "status": status,
                    "at": time.time(),
                }
            )

    def forget_requests(self) -> None:
        with self._requests_lock:
            self.requests.clear()

    def reset(self) -> None:
        """No fault rules, rate limits or recorded requests: a clean slate."""
        self.faults.clear()
        self.rate_limits = []
        self.forget_requests()

    def limit_rate(self, path: str, requests: int, seconds: float = 1.0) -> RateLimit:
        """Answer 429 to requests under `path` above `requests` per `seconds` (sliding)."""
        limit = RateLimit(path, requests, seconds)
        self.rate_limits = [*(r for r in self.rate_limits if r.path != path), limit]
        return limit

    def recorded(self, prefix: str = "") -> list[dict[str, Any]]:
        with self._requests_lock:
            return [r for r in self.requests if r["path"].startswith(prefix)]

    def dispatch(self, request: Request) -> Response | None:
        if request.path.startswith("/_sandbox/"):
            return self._admin(request)
        for limit in self.rate_limits:
            if not limit.admit(request.path):
                return Response.json(
                    {"message": "rate limit exceeded"}, status=429, headers={"Retry-After": "1"}
                )
        rule = self.faults.take(request.path)
        delay = 0.0
        if rule is not None:
            if rule.kind == "drop":
                return None
            if rule.kind == "slow":
                delay = rule.delay
            else:
                injected = rule.response()
                if injected is not None:
                    return injected
        for prefix, provider in self.providers.items():
            if request.path == prefix or request.path.startswith(prefix + "/"):
                sub = Request(
                    request.method,
                    request.path[len(prefix) :] or "/",
                    request.query,
                    request.headers,
                    request.body,
                )
                response = provider.handle(sub)
                response.delay += delay
                return response
        return Response.json({"message": f"no sandbox route for {request.path}"}, status=404)

    def _admin(self, request: Request) -> Response:
        what = request.path.removeprefix("/_sandbox/")
        if what == "faults" and request.method == "POST":
            self.faults.set(request.json() or [])
            return Response.json({"ok": True})
        if what == "rate_limit" and request.method == "POST":
            limit = request.json() or {}
            if limit.get("requests"):
                self.limit_rate(limit["path"], int(limit["requests"]), limit.get("seconds", 1.0))
            else:
                self.rate_limits = [r for r in self.rate_limits if r.path != limit.get("path")]
            return Response.json({"ok": True})
        if what == "requests" and request.method == "GET":
            return Response.json(self.recorded(request.query.get("prefix", "")))
        if what == "requests" and request.method == "DELETE":
            self.forget_requests()
            return Response.json({"ok": True})
        if what.startswith("config/") and request.method == "POST":
            prefix = "/" + what.removeprefix("config/")
            self.providers[prefix].configure(request.json() or {})
            return Response.json({"ok": True})
        return Response.json({"message": "unknown sandbox admin call"}, status=404)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; without TCP_NODELAY, Nagle plus the
            # client's delayed ACK add ~40 ms to every keep-alive answer.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                request = Request(
                    self.command,
                    parts.path,
                    query,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                response = server.dispatch(request)
                if response is None:
                    server.record(request, 0)
                    self.close_connection = True
                    return
                if response.delay:
                    time.sleep(response.delay)
                server.record(request, response.status)
                self.send_response(response.status)
                for key, value in response.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        return Handler


ProviderFactory = Callable[[dict[str, Any]], Provider]
