"""Benchmark (not a test) of replicas behind nginx with sessions in Redis (tools/deploy/replicas.sh):
aggregate tokens/s with 1 and 2 replicas against one server alone, and what keeping a session in
Redis adds to a request (its state is loaded before and stored after: one GET and one SET of the
state's bytes) against the server's own memory.

  /usr/bin/python3 tools/bench/replica_bench.py [--model models/austen-lm] [--clients 16]

Prints a markdown table for docs/benchmarks.md; every number is from this machine, this run.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_bench import REPO, Server, cpu_model, pct  # noqa: E402


class Deployment:
    def __init__(self, n: int, model: str, threads: int):
        self.proc = subprocess.Popen(["bash", str(REPO / "tools" / "deploy" / "replicas.sh"), str(n), "-m", model, "--",
                                      "-t", str(threads), "-np", "16"], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        self.info = json.loads(self.proc.stdout.readline())

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(30)


class Endpoint(Server):
    def __init__(self, port: int):  # a process someone else started
        self.port = port


def load(endpoint: Endpoint, clients: int, requests: int, max_tokens: int) -> float:
    def one(i):
        return endpoint.post("/v1/completions", {"prompt": f"Chapter {i}.", "max_tokens": max_tokens,
                                                 "seed": i})["usage"]["completion_tokens"]
    endpoint.post("/v1/completions", {"prompt": "warm", "max_tokens": 4})
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        tokens = sum(pool.map(one, range(requests)))
    return tokens / (time.perf_counter() - start)


def session_latency(endpoint: Endpoint, turns: int) -> list[float]:
    """Seconds per one-token turn of one session (one request at a time)."""
    sid = f"lat{time.monotonic_ns()}"
    endpoint.post("/v1/sessions", {"id": sid})
    out = []
    for i in range(turns):
        t0 = time.perf_counter()
        endpoint.post("/v1/completions", {"prompt": " x", "max_tokens": 1, "session_id": sid})
        out.append(time.perf_counter() - t0)
    return out[2:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "models" / "austen-lm"))
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    rows = []
    alone = Server(["-m", args.model, "-t", str(cores), "-np", "16"])
    try:
        rows.append(("one server alone (no nginx)", cores, load(alone, args.clients, args.requests, args.max_tokens)))
        local = session_latency(alone, 40)
    finally:
        alone.stop()
    for n in (1, 2):
        d = Deployment(n, args.model, max(1, cores // n))
        try:
            nginx = Endpoint(d.info["nginx_port"])
            rows.append((f"{n} replica{'s' if n > 1 else ''} behind nginx, sessions in Redis", max(1, cores // n),
                         load(nginx, args.clients, args.requests, args.max_tokens)))
            if n == 1:
                redis = session_latency(Endpoint(d.info["replica_ports"][0]), 40)
        finally:
            d.stop()
    print(f"Machine: {cpu_model()} ({cores} cores); {Path(args.model).name}; {args.clients} clients, "
          f"{args.requests} requests of {args.max_tokens} tokens.\n")
    print("| setup | engine threads per replica | tokens/s |\n|---|---|---|")
    for name, t, rate in rows:
        print(f"| {name} | {t} | {rate:.0f} |")
    print("\n| one-token turn of a session | p50 (ms) | p90 (ms) |\n|---|---|---|")
    print(f"| state in the server's memory | {pct(local, 0.5) * 1e3:.2f} | {pct(local, 0.9) * 1e3:.2f} |")
    print(f"| state in Redis (GET + SET) | {pct(redis, 0.5) * 1e3:.2f} | {pct(redis, 0.9) * 1e3:.2f} |")
    print(f"\nRedis adds {(statistics.median(redis) - statistics.median(local)) * 1e3:.2f} ms per session request "
          f"(median).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
