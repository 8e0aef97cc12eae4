"""Replicas behind nginx with sessions in Redis (tools/deploy/replicas.sh): any replica continues
any session, killing a replica loses nothing committed, Redis going away is a 503 that heals, and
a damaged or foreign state in Redis is refused. Real redis-server, nginx and `longvq serve`
processes on free loopback ports, all stopped at the end of each test.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import FIXTURES, MODELS, REPO, Server, wait_until

AUSTEN = MODELS / "austen-lm"
LM = FIXTURES / "lm_bytes_layernorm_tied"

pytestmark = pytest.mark.skipif(not (shutil.which("redis-server") and shutil.which("nginx")),
                                reason="needs Debian's redis-server and nginx (bash tools/setup.sh test)")


class Deployment:
    """tools/deploy/replicas.sh running: .nginx (a Server-like client), .replicas, .redis_port."""

    def __init__(self, longvq_bin: str, n: int, model: Path, *serve_args: str):
        env = {**os.environ}
        self.proc = subprocess.Popen(["bash", str(REPO / "tools" / "deploy" / "replicas.sh"), str(n), "-m", str(model),
                                      "--", "-t", "1", *serve_args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("replicas.sh did not start:\n" + self.proc.stderr.read().decode())
        self.info = json.loads(line)
        self.redis_port = self.info["redis_port"]
        self.nginx = Client(self.info["nginx_port"])
        self.replicas = [Client(p) for p in self.info["replica_ports"]]

    def redis(self, *args: str) -> str:
        return subprocess.run(["redis-cli", "-p", str(self.redis_port), *args], capture_output=True, check=True,
                              text=True).stdout.strip()

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class Client(Server):
    """The HTTP helpers of conftest.Server for a process someone else started."""

    def __init__(self, port: int):  # noqa: super().__init__ would start a server
        self.port = port


@pytest.fixture
def deploy(longvq_bin):
    started = []

    def start(n=2, model=AUSTEN, *args):
        d = Deployment(longvq_bin, n, model, *args)
        started.append(d)
        return d
    yield start
    for d in started:
        d.stop()


GREEDY = {"temperature": 0, "max_tokens": 12}


def turn(client: Client, sid: str, prompt: str, **fields) -> str:
    return client.complete(prompt=prompt, session_id=sid, **{**GREEDY, **fields})["choices"][0]["text"]


def test_a_session_started_on_one_replica_continues_on_another(deploy, serve):
    d = deploy()
    a, b = d.replicas
    assert a.request("POST", "/v1/sessions", {"id": "s"})[0] == 201
    first = turn(a, "s", "It was a dark")
    second = turn(b, "s", " and stormy")  # the other replica
    whole = a.complete(prompt="It was a dark" + first + " and stormy", **GREEDY)["choices"][0]["text"]
    assert second == whole  # == one uninterrupted request
    # Seeded sampling: the same two turns on one server alone give the same texts.
    b.request("POST", "/v1/sessions", {"id": "r"})
    seeded = [turn(b, "r", "Emma", temperature=0.9, seed=5), turn(a, "r", " said", temperature=0.9, seed=6)]
    solo = serve("-m", str(AUSTEN), "-t", "1")
    solo.request("POST", "/v1/sessions", {"id": "r"})
    assert seeded == [turn(solo, "r", "Emma", temperature=0.9, seed=5), turn(solo, "r", " said", temperature=0.9, seed=6)]


def test_16_clients_through_nginx_equal_a_single_server(deploy, serve):
    d = deploy()
    solo = serve("-m", str(AUSTEN), "-t", "1", "-np", "8")
    prompts = [[f"Letter {i}.", " Dear", " sir"] for i in range(16)]

    def conversation(client, i):
        sid = f"c{i}"
        assert client.request("POST", "/v1/sessions", {"id": sid})[0] == 201
        return [turn(client, sid, p, temperature=0.7, seed=100 * i + k) for k, p in enumerate(prompts[i])]
    with ThreadPoolExecutor(16) as pool:
        through = list(pool.map(lambda i: conversation(d.nginx, i), range(16)))
        alone = list(pool.map(lambda i: conversation(solo, i), range(16)))
    assert through == alone
    served = [r.metrics()['longvq_requests_total{endpoint="/v1/completions",status="200"}'] for r in d.replicas]
    assert all(n > 0 for n in served)  # nginx spread them over both replicas


def test_kill_9_a_replica_mid_stream_then_retry_continues_from_the_last_commit(deploy):
    d = deploy(2, AUSTEN, "-n", "100000000", "--session-lock-ttl", "1")  # ASCII text: re-tokenizes exactly
    a, b = d.replicas
    a.request("POST", "/v1/sessions", {"id": "k"})
    committed = turn(a, "k", "start")
    sock = a.open_stream({"prompt": " more", "session_id": "k", "max_tokens": 100_000_000})
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    os.kill(d.info["replica_pids"][0], signal.SIGKILL)  # replica A dies mid-stream
    sock.settimeout(10)
    rest = b""
    while True:  # the client sees the stream end without [DONE]
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    assert b"[DONE]" not in rest
    sock.close()
    # A retry through nginx reaches B once A's lock on the session has expired (1 s), and
    # continues from the last committed context: as if the killed request never ran.
    answers = []
    def retry():
        status, _, body = d.nginx.request("POST", "/v1/completions", {"prompt": " more", "session_id": "k", **GREEDY})
        if status == 200:
            answers.append(body["choices"][0]["text"])
        return status == 200
    assert wait_until(retry, timeout=20, step=0.25)
    whole = b.complete(prompt="start" + committed + " more", **GREEDY)["choices"][0]["text"]
    assert answers == [whole]
    assert b.request("GET", "/health")[0] == 200  # the survivor keeps serving


def test_redis_stopped_and_restarted_gives_503_then_heals(deploy):
    d = deploy(1, LM)
    r = d.replicas[0]
    r.request("POST", "/v1/sessions", {"id": "x"})
    before = turn(r, "x", "hello")
    redis_pid = d.info["redis_pid"]
    d.redis("SAVE")  # a snapshot (dump.rdb): the restarted Redis loads the sessions from it
    os.kill(redis_pid, signal.SIGKILL)
    time.sleep(0.2)
    status, headers, err = r.request("POST", "/v1/completions", {"prompt": "y", "session_id": "x", **GREEDY})
    assert status == 503 and "redis" in err["error"]["message"] and headers.get("Retry-After")
    assert r.request("POST", "/v1/sessions", {"id": "z"})[0] == 503
    assert r.complete(prompt="no session needed", max_tokens=3)["choices"]  # still serves the rest
    assert r.metrics()["longvq_session_store_errors_total"] >= 1
    restarted = subprocess.Popen(["redis-server", "--port", str(d.redis_port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--dir", d.info["dir"]], stdout=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: r.request("POST", "/v1/sessions", {"id": "z"})[0] == 201, timeout=20, step=0.2)
        after = turn(r, "x", " again")  # the session is back, as it was
        assert after == r.complete(prompt="hello" + before + " again", **GREEDY)["choices"][0]["text"]
    finally:
        restarted.terminate()
        restarted.wait(10)


def test_a_damaged_or_foreign_state_in_redis_is_refused(deploy, longvq_bin):
    d = deploy(1, LM)
    r = d.replicas[0]
    r.request("POST", "/v1/sessions", {"id": "v"})
    turn(r, "v", "abc")
    key = d.redis("--scan", "--pattern", "longvq:*:s:v")
    assert key
    size = int(d.redis("STRLEN", key))

    def answer():
        status, _, body = r.request("POST", "/v1/completions", {"prompt": "d", "session_id": "v", **GREEDY})
        return status, body["error"]["message"] if status != 200 else ""
    # A bit flipped in the data area: the checksum catches it.
    d.redis("SETRANGE", key, str(size - 10), "\x7f")
    status, message = answer()
    assert status == 500 and "checksum" in message
    # Truncated.
    d.redis("EVAL", "return redis.call('SET', KEYS[1], string.sub(redis.call('GET', KEYS[1]), 1, 1000))", "1", key)
    status, message = answer()
    assert status == 500 and message
    # Another model's state under this model's key (a byte LM of another configuration).
    subprocess.run([longvq_bin, "generate", "-m", str(FIXTURES / "lm_rmsnorm_postnorm_untied"), "-p", "t1 t2", "-n", "1",
                    "--state-out", d.info["dir"] + "/other.state", "-t", "1"], capture_output=True, check=True)
    foreign = Path(d.info["dir"] + "/other.state").read_bytes()
    subprocess.run(["redis-cli", "-p", str(d.redis_port), "-x", "SET", key], input=foreign, check=True,
                   capture_output=True)
    status, message = answer()
    assert status == 500 and "another model" in message
    assert r.request("GET", "/health")[0] == 200
