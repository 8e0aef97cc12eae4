"""Real `longvq serve` processes on loopback for the server tests, and plain HTTP clients.

The binary comes from --longvq-bin (ctest passes the one it built) or $LONGVQ_BIN, else build/longvq.
Every server is started on a free port (--port 0; the port is read from its first line on stderr)
and killed at the end of its test, whatever happened.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
MODELS = REPO / "models"


def pytest_addoption(parser):
    parser.addoption("--longvq-bin", default=os.environ.get("LONGVQ_BIN", str(REPO / "build" / "longvq")))


@pytest.fixture(scope="session")
def longvq_bin(request) -> str:
    path = request.config.getoption("--longvq-bin")
    if not Path(path).exists():
        pytest.fail(f"{path} does not exist: build it first (cmake --build build) or pass --longvq-bin")
    return path


class Server:
    """A running `longvq serve`; .port, .request(), .stream(), .stop()."""

    def __init__(self, binary: str, args: list[str], env: dict | None = None):
        self.args = [binary, "serve", "--port", "0", *args]
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env={**os.environ, **(env or {})})
        self.log: list[str] = []
        self._port = threading.Event()
        self.port = 0
        threading.Thread(target=self._read_stderr, daemon=True).start()
        if not self._port.wait(60):
            self.kill()
            raise RuntimeError("the server did not start:\n" + "".join(self.log))

    def _read_stderr(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace")
            self.log.append(line)
            m = re.search(r"listening on http://[^:]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                self._port.set()

    def connection(self, timeout: float = 60) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method: str, path: str, body=None, headers: dict | None = None, timeout: float = 120):
        """(status, headers, parsed JSON or text)."""
        conn = self.connection(timeout)
        data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
        conn.request(method, path, body=data, headers=headers or {})
        resp = conn.getresponse()
        raw = resp.read()
        conn.close()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw.decode("utf-8", "replace")
        return resp.status, dict(resp.getheaders()), parsed

    def complete(self, **fields):
        status, _, body = self.request("POST", "/v1/completions", fields)
        assert status == 200, body
        return body

    def stream(self, **fields):
        """The SSE events of a streamed completion, as parsed JSON (and 'DONE')."""
        conn = self.connection()
        conn.request("POST", "/v1/completions", body=json.dumps({**fields, "stream": True}))
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        assert resp.getheader("Content-Type").startswith("text/event-stream")
        events = []
        for line in resp:
            line = line.decode("utf-8").rstrip("\n")
            if not line.startswith("data: "):
                continue
            payload = line[len("data: "):]
            events.append("DONE" if payload == "[DONE]" else json.loads(payload))
            if payload == "[DONE]":
                break
        conn.close()
        return events

    def open_stream(self, body: dict, headers: dict | None = None) -> socket.socket:
        """Starts a streamed completion on a raw socket (the test closes it: a client going away)."""
        sock = socket.create_connection(("127.0.0.1", self.port))
        data = json.dumps({**body, "stream": True}).encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()).encode()
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra +
                     b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
        return sock

    def metrics(self, headers: dict | None = None) -> dict[str, float]:
        status, _, text = self.request("GET", "/metrics", headers=headers)
        assert status == 200, text
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self, sig=signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def serve(longvq_bin):
    """serve(*args) starts a server; every one is stopped at the end of the test."""
    started: list[Server] = []

    def start(*args, env=None) -> Server:
        s = Server(longvq_bin, list(args), env)
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()


def generate_cli(binary: str, model: Path, prompt: str, n: int, seed: int, temp: float) -> str:
    """`longvq generate` with sampling spelled out as the server's defaults (top-k 0, top-p 1, min-p 0)."""
    out = subprocess.run([binary, "generate", "-m", str(model), "-p", prompt, "-n", str(n), "--seed", str(seed),
                          "--temp", str(temp), "--top-k", "0", "--top-p", "1", "--min-p", "0", "--repeat-penalty", "1",
                          "--no-display-prompt", "-t", "1"], capture_output=True, check=True)
    return out.stdout.decode("utf-8", "replace")


def wait_until(predicate, timeout: float = 10.0, step: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
