"""Benchmark of `longvq serve` (not a test): throughput and latency under concurrent clients, against
(a) one `longvq generate` process per request and (b) the engine's own batched decode rate
(`longvq bench --decode-batch B`), and the server's memory against the number of sessions it holds.

  /usr/bin/python3 tools/bench/serve_bench.py [--model models/austen-lm] [--threads 2] [--quick]

Writes docs/serve_bench.json and the plot docs/serve_bench.png, and prints a markdown table for
docs/benchmarks.md. Every number is measured on this machine in this run (the CPU is named).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / "build" / "longvq"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


class Server:
    def __init__(self, args: list[str]):
        self.proc = subprocess.Popen([str(BIN), "serve", "--port", "0", *args], stderr=subprocess.PIPE)
        self.port = 0
        ready = threading.Event()

        def read():
            for raw in self.proc.stderr:
                m = re.search(rb"listening on http://[^:]+:(\d+)", raw)
                if m:
                    self.port = int(m.group(1))
                    ready.set()
        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(60):
            raise RuntimeError("server did not start")

    def post(self, path: str, body: dict) -> dict:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        c.request("POST", path, json.dumps(body))
        r = c.getresponse()
        data = json.loads(r.read())
        c.close()
        if r.status >= 300:
            raise RuntimeError(data)
        return data

    def stream(self, body: dict) -> tuple[float, list[float], int]:
        """(time to first token, inter-token gaps, tokens) of one streamed completion, in seconds."""
        t0 = time.perf_counter()
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        c.request("POST", "/v1/completions", json.dumps({**body, "stream": True}))
        r = c.getresponse()
        stamps = []
        for line in r:
            if line.startswith(b"data: {") and b'"finish_reason":null' in line:
                stamps.append(time.perf_counter())
            elif line.startswith(b"data: [DONE]"):
                break
        c.close()
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        return (stamps[0] - t0 if stamps else float("nan")), gaps, len(stamps)

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server so far (the clients share this machine's cores)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(60)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def prompt(i: int) -> str:
    return f"Chapter {i + 1}. It was a fine morning when Mr. Darcy"


def run_server_load(server: Server, clients: int, requests: int, max_tokens: int) -> dict:
    ttft, gaps, tokens = [], [], 0
    lock = threading.Lock()

    def one(i):
        nonlocal tokens
        t, g, n = server.stream({"prompt": prompt(i), "max_tokens": max_tokens, "temperature": 0.8, "seed": i})
        with lock:
            ttft.append(t)
            gaps.extend(g)
            tokens += n
    start, cpu0 = time.perf_counter(), server.cpu_seconds()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(requests)))
    wall, cpu = time.perf_counter() - start, server.cpu_seconds() - cpu0
    return {"clients": clients, "requests": requests, "tokens": tokens, "seconds": wall, "tok_s": tokens / wall,
            "server_cpu_s": cpu, "tok_per_server_cpu_s": tokens / cpu if cpu > 0 else float("nan"),
            "ttft_p50": pct(ttft, 0.5), "ttft_p99": pct(ttft, 0.99), "itl_p50": pct(gaps, 0.5), "itl_p99": pct(gaps, 0.99)}


def run_process_per_request(model: str, threads: int, clients: int, requests: int, max_tokens: int) -> dict:
    ttft = []
    lock = threading.Lock()

    def one(i):
        t0 = time.perf_counter()
        p = subprocess.Popen([str(BIN), "generate", "-m", model, "-p", prompt(i), "-n", str(max_tokens), "--seed",
                              str(i), "--no-display-prompt", "-t", str(threads)], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
        first = p.stdout.read(1)
        t1 = time.perf_counter()
        p.stdout.read()
        p.wait()
        with lock:
            if first:
                ttft.append(t1 - t0)
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(requests)))
    wall = time.perf_counter() - start
    return {"clients": clients, "requests": requests, "tokens": requests * max_tokens, "seconds": wall,
            "tok_s": requests * max_tokens / wall, "ttft_p50": pct(ttft, 0.5), "ttft_p99": pct(ttft, 0.99)}


def engine_batched_decode(model: str, threads: int, batch: int, n: int) -> float:
    out = subprocess.run([str(BIN), "bench", "-m", model, "-t", str(threads), "-p", "16", "-n", str(n), "-d", "0",
                          "--decode-batch", str(batch), "-r", "3", "-o", "json"], capture_output=True, check=True)
    rows = json.loads(out.stdout)
    tg = [r for r in rows if r["test"].startswith("tg")]
    return statistics.mean(tg[0]["samples_rate"])


def sessions_memory(model: str, threads: int, counts: list[int]) -> list[dict]:
    server = Server(["-m", model, "-t", str(threads), "-np", "16", "--session-memory", str(1 << 40)])
    out, held = [], 0
    try:
        # Warm first (the scheduler plans its buffers on the first requests): the baseline is
        # then a serving process with no sessions, and what follows is what sessions add.
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda i: server.post("/v1/completions", {"prompt": "Hello", "max_tokens": 1}), range(64)))
        time.sleep(0.2)
        base = server.rss_mib()
        for target in counts:
            def one(i):
                sid = f"s{i}"
                server.post("/v1/sessions", {"id": sid})
                server.post("/v1/completions", {"prompt": "Hello", "max_tokens": 1, "session_id": sid})
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(one, range(held, target)))
            held = target
            time.sleep(0.2)
            out.append({"sessions": held, "rss_mib": server.rss_mib(), "base_mib": base})
    finally:
        server.stop()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "models" / "austen-lm"))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="fewer requests and sessions (a smoke run)")
    args = ap.parse_args()
    levels = [1, 4, 16, 64]
    per_client = 2 if args.quick else 8
    session_counts = [0, 100, 200] if args.quick else [0, 250, 500, 1000, 2000]

    result = {"machine": cpu_model(), "cores": os.cpu_count(), "threads": args.threads, "model": args.model,
              "max_tokens": args.max_tokens, "server": [], "process_per_request": [], "engine_decode": {},
              "sessions": []}
    server = Server(["-m", args.model, "-t", str(args.threads), "-np", "64"])
    try:
        server.stream({"prompt": "warm up", "max_tokens": 8})
        for c in levels:
            r = run_server_load(server, c, c * per_client, args.max_tokens)
            result["server"].append(r)
            print(f"server {c:3d} clients: {r['tok_s']:8.1f} tok/s, TTFT p50 {r['ttft_p50'] * 1e3:.1f} ms", file=sys.stderr)
    finally:
        server.stop()
    for c in levels:
        r = run_process_per_request(args.model, 1, min(c, args.threads), c * per_client, args.max_tokens)
        result["process_per_request"].append({**r, "clients": c})
        print(f"processes {c:3d}: {r['tok_s']:8.1f} tok/s", file=sys.stderr)
    for c in levels:
        result["engine_decode"][str(c)] = engine_batched_decode(args.model, args.threads, c, args.max_tokens)
    result["sessions"] = sessions_memory(args.model, args.threads, session_counts)
    state = json.loads(subprocess.run([str(BIN), "bench", "-m", args.model, "-p", "16", "-n", "1", "-d", "0", "-r",
                                       "1", "-o", "json"], capture_output=True, check=True).stdout)[0]["state_bytes"]
    result["state_bytes"] = state

    out_json = REPO / "docs" / "serve_bench.json"
    out_json.write_text(json.dumps(result, indent=1) + "\n")
    plot(result, REPO / "docs" / "serve_bench.png")
    print(table(result))
    return 0


def table(r: dict) -> str:
    lines = [f"Machine: {r['machine']} ({r['cores']} cores), engine threads {r['threads']}, "
             f"{Path(r['model']).name}, {r['max_tokens']} tokens per request.", "",
             "| clients | server tok/s | TTFT p50 / p99 (ms) | inter-token p50 / p99 (ms) | process per request tok/s | "
             "engine batched decode tok/s | server / engine | server CPU (cores busy) | server / engine per CPU-second |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s, p in zip(r["server"], r["process_per_request"]):
        e = r["engine_decode"][str(s["clients"])]
        lines.append(f"| {s['clients']} | {s['tok_s']:.0f} | {s['ttft_p50'] * 1e3:.1f} / {s['ttft_p99'] * 1e3:.1f} | "
                     f"{s['itl_p50'] * 1e3:.2f} / {s['itl_p99'] * 1e3:.2f} | {p['tok_s']:.0f} | {e:.0f} | "
                     f"{s['tok_s'] / e:.2f} | {s['server_cpu_s'] / s['seconds']:.2f} | "
                     f"{s['tok_per_server_cpu_s'] / (e / r['threads']):.2f} |")
    lines += ["", "| sessions held | server RSS (MiB) | growth per session since the row above (KiB) | state per session (KiB) |",
              "|---|---|---|---|"]
    prev = None
    for s in r["sessions"]:
        per = (s["rss_mib"] - prev["rss_mib"]) * 1024 / (s["sessions"] - prev["sessions"]) if prev else 0
        lines.append(f"| {s['sessions']} | {s['rss_mib']:.1f} | {per:.0f} | {r['state_bytes'] / 1024:.0f} |")
        prev = s
    return "\n".join(lines)


def plot(r: dict, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 3, figsize=(14, 4))
    c = [s["clients"] for s in r["server"]]
    ax[0].plot(c, [s["tok_s"] for s in r["server"]], "o-", label="longvq serve")
    ax[0].plot(c, [p["tok_s"] for p in r["process_per_request"]], "s--", label="a process per request")
    ax[0].plot(c, [r["engine_decode"][str(x)] for x in c], "^:", label="engine batched decode (bench --decode-batch)")
    ax[0].set(xscale="log", xlabel="concurrent clients", ylabel="tokens/s", title="throughput")
    ax[0].legend()
    ax[1].plot(c, [s["ttft_p50"] * 1e3 for s in r["server"]], "o-", label="TTFT p50")
    ax[1].plot(c, [s["ttft_p99"] * 1e3 for s in r["server"]], "o--", label="TTFT p99")
    ax[1].plot(c, [s["itl_p50"] * 1e3 for s in r["server"]], "s-", label="inter-token p50")
    ax[1].plot(c, [s["itl_p99"] * 1e3 for s in r["server"]], "s--", label="inter-token p99")
    ax[1].set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel="ms", title="latency")
    ax[1].legend()
    n = [s["sessions"] for s in r["sessions"]]
    ax[2].plot(n, [s["rss_mib"] for s in r["sessions"]], "o-", label="server RSS")
    ax[2].plot(n, [r["sessions"][0]["rss_mib"] + k * r["state_bytes"] / 2**20 for k in n], "k:", label="+ state size each")
    ax[2].set(xlabel="sessions held", ylabel="MiB", title="memory")
    ax[2].legend()
    fig.suptitle(f"longvq serve, {Path(r['model']).name} on {r['machine']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
