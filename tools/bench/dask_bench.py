"""Benchmark (not a test) of classification across processes and machines (issue 17):

  1. `longvq classify` streaming: peak RSS for 10,000 and 1,000,000 input lines (memory bounded
     by the window, not the input).
  2. python3 -m longvq.dask on a local scheduler with 1 and 2 workers (1 thread each) against the
     CLI in one process (1 thread) on the same ListOps JSONL: rows/s and the ratio.
  3. What the scheduler costs per partition: the same job cut into partitions of 1 line, whose
     compute is negligible, gives the per-task overhead; the scaling model for N machines follows.

  /usr/bin/python3 tools/bench/dask_bench.py [--copies 6] [--lines 1000000]

Needs the build (build/longvq, build/python). Prints a markdown section for docs/benchmarks.md;
every number is from this machine, this run.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / "build" / "longvq"
LISTOPS = REPO / "models" / "listops"
TINY = REPO / "tests" / "fixtures" / "cls_batchnorm_tokens"
PY = "/usr/bin/python3"


def cpu_model() -> str:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def run_rss(args: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of a command."""
    t0 = time.monotonic()
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, args
    return time.monotonic() - t0, ru.ru_maxrss


def listops_jsonl(path: Path, copies: int) -> int:
    lines = (REPO / "tests" / "data" / "listops_test200.tsv").read_text().splitlines()[1:]
    n = 0
    with open(path, "w") as f:
        for c in range(copies):
            for i, line in enumerate(lines):
                text, label = line.split("\t")
                f.write(json.dumps({"id": f"c{c}-{i}", "text": text, "label": int(label)}) + "\n")
                n += 1
    return n


def tiny_jsonl(path: Path, n: int) -> None:
    r = random.Random(1)
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": i, "tokens": [r.randrange(40) for _ in range(r.randrange(1, 9))]}) + "\n")


def dask_job(model: Path, inp: Path, out: Path, workers: int, partition: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(REPO / "build" / "python"), OMP_NUM_THREADS="1")
    t0 = time.monotonic()
    r = subprocess.run([PY, "-m", "longvq.dask", "classify", "-m", str(model), str(inp), "-o", str(out),
                        "--local-workers", str(workers), "--partition-lines", str(partition), "-q"],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # The job's own time (after the cluster started), from its last line.
    last = r.stderr.strip().splitlines()[-1]
    return float(last.split(" in ")[-1].rstrip(" s")) if " in " in last else time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=6, help="copies of the 200-line ListOps slice (default 6)")
    ap.add_argument("--lines", type=int, default=1_000_000, help="lines of the large streaming input")
    ap.add_argument("--partition", type=int, default=100, help="lines per partition for the throughput rows")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="longvq_dask_bench_"))
    out = [f"Machine: {cpu_model()}, {os.cpu_count()} cores; one run, {time.strftime('%Y-%m-%d')}.", ""]

    # 1. Streaming memory.
    out += ["| input lines (tiny fixture model, 1-8 tokens each) | wall | peak RSS |", "|---|---|---|"]
    for n in (10_000, args.lines):
        tiny_jsonl(tmp / "s.jsonl", n)
        wall, rss = run_rss([str(BIN), "classify", "-m", str(TINY), str(tmp / "s.jsonl"), "-t", "1",
                             "-o", str(tmp / "s.out")])
        out.append(f"| {n:,} ({(tmp / 's.jsonl').stat().st_size / 2**20:.1f} MiB) | {wall:.2f} s | {rss / 1024:.1f} MiB |")
    out.append("")

    # 2. Throughput: the CLI in one process against Dask with 1 and 2 workers.
    rows = listops_jsonl(tmp / "l.jsonl", args.copies)
    wall, _ = run_rss([str(BIN), "classify", "-m", str(LISTOPS), str(tmp / "l.jsonl"), "-t", "1", "-o", str(tmp / "c.out")])
    cli_rate = rows / wall
    out += [f"ListOps, {rows:,} rows of 500-2,000 tokens, partitions of {args.partition} lines:", "",
            "| run | rows/s | vs the CLI |", "|---|---|---|",
            f"| `longvq classify -t 1` (one process, process start and model load included) | {cli_rate:.1f} | 1.00 |"]
    for w in (1, 2):
        s = dask_job(LISTOPS, tmp / "l.jsonl", tmp / f"d{w}.out", w, args.partition)
        same = (tmp / f"d{w}.out").read_bytes() == (tmp / "c.out").read_bytes()
        out.append(f"| `longvq.dask`, {w} worker{'s' if w > 1 else ''} × 1 thread (job time, cluster start "
                   f"excluded){'' if same else ' **OUTPUT DIFFERS**'} | {rows / s:.1f} | {rows / s / cli_rate:.2f} |")
    out.append("")

    # 3. Scheduler cost per partition: 2,000 partitions of one tiny line each.
    tiny_jsonl(tmp / "t.jsonl", 2000)
    s1 = dask_job(TINY, tmp / "t.jsonl", tmp / "t1.out", 2, 1)
    s2 = dask_job(TINY, tmp / "t.jsonl", tmp / "t2.out", 2, 2000)
    per = (s1 - s2) / 2000
    out += [f"Scheduler and client cost per partition (2,000 one-line partitions on 2 workers: {s1:.2f} s; the same "
            f"rows as one partition: {s2:.2f} s): **{per * 1e3:.2f} ms per partition**.", ""]
    listops_row_s = 1 / (cli_rate if cli_rate else 1)
    hide = 10 * per / listops_row_s
    out += [f"Scaling model: a job of R rows on N workers of r rows/s each takes about R/(N·r) + (R/P)·c/N' + "
            f"start-up, with c = {per * 1e3:.2f} ms the per-partition cost (paid by the client and scheduler, "
            f"N' ≈ 1 while one client feeds them) and P the partition size. The overhead stays under 10% of the "
            f"compute while P/r ≥ 10·c·N, i.e. for ListOps (r ≈ {cli_rate:.0f} rows/s per worker) P ≥ "
            f"{max(1, hide):.0f}·N lines; the default --partition-lines 2000 hides it up to N ≈ "
            f"{2000 / max(hide, 1e-9):.0f} workers."]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
