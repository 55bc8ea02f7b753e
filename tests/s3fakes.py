"""A real S3 endpoint on loopback for tests: moto's server in its own process, and a fault-injecting proxy.

``MotoServer`` starts ``python -m moto.server`` on 127.0.0.1 (port 0) and
reads the port it got. ``FaultProxy`` sits in front of it and forwards every
request, except those a rule matches: those get a 500/503 answer, no answer
until the client gives up, or a dropped connection. Tests point
``AWS_ENDPOINT_URL`` at either. Its handler threads count and log under one
lock, so the counts a test reads are exact.
"""

from __future__ import annotations

import http.client
import re
import select
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: credentials for the fake endpoint; never real ones
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing-key-id",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-NEVER-LOGGED",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # never ask 169.254.169.254 for credentials
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}


class MotoServer:
    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> str:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            match = re.search(r"Running on (http://127\.0\.0\.1:\d+)", line)
            if match:
                self.url = match.group(1)
                threading.Thread(target=self._drain, daemon=True).start()
                return self.url
            if not line and self.process.poll() is not None:
                break
        raise RuntimeError("moto server did not start")

    def _drain(self) -> None:
        for _ in self.process.stdout:
            pass

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


@dataclass
class Fault:
    """Requests matching ``method`` and ``path`` (a regex on path+query) get ``action``, ``times`` times (None: always).

    ``slow``: no answer until the client gives up and closes the connection (its read timeout), so the timeout
    fires by construction; after ``delay`` s (a safety net) the request is forwarded after all.
    """

    action: str  #: "status", "slow" or "drop"
    method: str | None = None
    path: str = ""
    status: int = 503
    delay: float = 120.0
    times: int | None = 1
    hits: int = 0  #: counted under the proxy's lock

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        return (self.method is None or self.method == method) and re.search(self.path, path) is not None


@dataclass
class FaultProxy:
    upstream: str
    faults: list[Fault] = field(default_factory=list)
    log: list[tuple[str, str, str]] = field(default_factory=list)  #: (method, path, outcome)
    down: bool = False  #: every request is answered 503 while set
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start(self) -> str:
        proxy = self
        host, port = self.upstream.removeprefix("http://").split(":")

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy._fault(self.command, self.path)
                if fault is not None and fault.action == "drop":
                    proxy._record(self.command, self.path, "drop")
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if fault is not None and fault.action == "slow" and self._client_gave_up(fault.delay):
                    proxy._record(self.command, self.path, "client gave up")
                    self.close_connection = True
                    return
                if proxy.down or (fault is not None and fault.action == "status"):
                    status = fault.status if fault is not None and fault.action == "status" else 503
                    proxy._record(self.command, self.path, str(status))
                    payload = (f"<?xml version='1.0'?><Error><Code>{'SlowDown' if status == 503 else 'InternalError'}"
                               f"</Code><Message>injected</Message></Error>").encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                connection = http.client.HTTPConnection(host, int(port), timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                proxy._record(self.command, self.path, str(response.status))
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(name, value)
                if self.command == "HEAD":
                    self.send_header("Content-Length", response.getheader("Content-Length") or "0")
                else:
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                connection.close()

            def _client_gave_up(self, limit: float) -> bool:
                """Wait, answering nothing, until the client closes the connection (or ``limit`` s pass)."""
                readable, _, _ = select.select([self.connection], [], [], limit)
                return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.hits += 1
                    return fault
        return None

    def _record(self, method: str, path: str, outcome: str) -> None:
        with self._lock:
            self.log.append((method, path, outcome))

    def hits(self) -> list[tuple[str, int, int | None]]:
        """(path regex, hits, times) of every fault."""
        with self._lock:
            return [(fault.path, fault.hits, fault.times) for fault in self.faults]

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self, method: str, path_regex: str = "", outcome: str | None = None) -> int:
        with self._lock:
            return sum(1 for m, p, o in self.log
                       if m == method and re.search(path_regex, p) and (outcome is None or o == outcome))
