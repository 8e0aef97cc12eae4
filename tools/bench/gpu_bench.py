#!/usr/bin/env python3
"""longvq GPU benchmark: the engine's CUDA backend against the PyTorch reference on the same GPU.

  python3 tools/bench/gpu_bench.py --engine build-gpu/engine_bench --out gpu-results --budget 150
  /usr/bin/python3 tools/bench/gpu_bench.py --engine build/engine_bench --smoke   # plumbing, on the CPU

Run by tools/gpu_check.sh (stage bench) with the python3 that has PyTorch with CUDA. Workloads
(fp32 everywhere; in priority order, each skipped when the budget is spent):
  decode b1 and b64 at context 512, prefill 4096, on models/austen-lm and a random ~100 M model
  (compare.py's RANDOM_100M, generated under data/bench/ on first use), classification of 16
  sequences on models/listops and models/fashion-seq (the first 16 examples of tests/data).
Systems, one process each per model (engine: one process for all):
  engine        tools/bench/engine_bench.cpp, "backend": "cuda" (CUDA graphs replay every step)
  engine fixed  the same with LONGVQ_CUDA_LINEAR=fixed (the fixed-order linear), decode only
  torch eager   tools/longvq_ref on the GPU, fp32, eager
  torch graph   the same captured once with torch.cuda.CUDAGraph and replayed (decode: one step;
                prefill/classify: the whole call); "capture failed: ..." when the reference
                synchronizes with the host inside (e.g. one_hot's range check)
  torch compile torch.compile of the decode step / the forward, only with --compile (a minute or
                more of compiling per model), in its own process with a timeout
Also measured: the GPU's copy bandwidth (device-to-device copy of 1 GiB: bytes read + written over
time, best of 10), from which the decode roofline follows: bytes per step = the stored weight
bytes + B × the state bytes per sequence, so the best rate is B × bandwidth / bytes per step.
Every system's outputs of the first run are dumped and compared with the engine's (max |diff|).
Writes OUT/bench.json and OUT/table.md and prints the table. Speed is never a test.
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(HERE))

import compare  # noqa: E402  (RANDOM_100M, ensure_random, model_info, tensor_file, text_bytes)

T0 = time.time()
WORK = REPO / "data" / "bench" / "gpu"


def log(msg: str) -> None:
    print(f"[gpu_bench {time.time() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


# -- workloads ------------------------------------------------------------------------------------
WORKLOADS = [  # id, model key, kind, batch, depth/n, steps
    ("decode-b1-austen", "austen-lm", "decode", 1, 512, 64),
    ("decode-b64-austen", "austen-lm", "decode", 64, 512, 32),
    ("prefill-4096-austen", "austen-lm", "prefill", 1, 4096, 0),
    ("classify-listops", "listops", "classify", 16, 0, 0),
    ("classify-fashion", "fashion-seq", "classify", 16, 0, 0),
    ("decode-b1-100m", "random-100m", "decode", 1, 512, 32),
    ("decode-b64-100m", "random-100m", "decode", 64, 512, 16),
    ("prefill-4096-100m", "random-100m", "prefill", 1, 4096, 0),
]
SMOKE = {"decode-b1-austen": 4, "decode-b64-austen": 2, "prefill-4096-austen": 256, "classify-fashion": 0}


def classify_rows(key: str, batch: int):
    """The first `batch` examples of the committed test slice, padded to the longest; lengths."""
    import numpy as np
    cfg = json.loads((REPO / "models" / key / "config.json").read_text())
    if cfg["tokenizer"]["kind"] == "pixels":
        raw = (REPO / "tests/data/fashion_test1000-images-idx3-ubyte").read_bytes()
        count, rows, cols = struct.unpack(">III", raw[4:16])
        px = np.frombuffer(raw[16:16 + batch * rows * cols], dtype=np.uint8).reshape(batch, rows * cols)
        mean, std = np.float32(cfg["tokenizer"]["mean"]), np.float32(cfg["tokenizer"]["std"])
        x = ((px.astype(np.float32) / np.float32(255.0) - mean) / std).astype(np.float32)
        return x, np.full(batch, rows * cols, dtype=np.int64)
    index = {t: i for i, t in enumerate(cfg["tokenizer"]["tokens"])}
    lines = (REPO / "tests/data/listops_test200.tsv").read_text().splitlines()[1:1 + batch]
    seqs = [[index[w] for w in line.split("\t")[0].split()] for line in lines]
    n = max(len(s) for s in seqs)
    x = np.zeros((batch, n), dtype=np.int64)
    for b, s in enumerate(seqs):
        x[b, :len(s)] = s
    return x, np.array([len(s) for s in seqs], dtype=np.int64)


def prepare(w, info, device: str) -> dict:
    """Input files every system reads; decode contexts are prefilled by the reference on `device`."""
    import numpy as np
    import torch
    from longvq_ref.export import load_model
    wid, key, kind, batch, size, steps = w
    d = WORK / wid
    d.mkdir(parents=True, exist_ok=True)
    p = {"dir": str(d)}
    if kind == "decode":
        text = compare.text_bytes(batch * (size + steps) + 1)
        seqs = np.stack([np.concatenate([[256], text[b * (size + steps):(b + 1) * (size + steps)]]) for b in range(batch)])
        context, nxt = seqs[:, :size], seqs[:, size:size + steps]
        model = load_model(info.dir, dtype=torch.float32).to(device)
        with torch.inference_mode():
            _, state = model.prefill(torch.from_numpy(context).to(device))
        state.save(d / "state.safetensors", model.cfg)  # (copies to the host)
        p["state_file"] = str(d / "state.safetensors")
        p["tokens32"] = compare.tensor_file(d / "tokens.i32", nxt.T.astype(np.int32))  # [steps, batch]
        p["tokens64"] = compare.tensor_file(d / "tokens.i64", nxt.T.astype(np.int64))
        del model
    elif kind == "prefill":
        tokens = np.concatenate([[256], compare.text_bytes(size - 1)])[None].repeat(batch, 0)
        p["tokens32"] = compare.tensor_file(d / "tokens.i32", tokens.astype(np.int32))
        p["tokens64"] = compare.tensor_file(d / "tokens.i64", tokens.astype(np.int64))
    else:
        x, lengths = classify_rows(key, batch)
        p["length"] = int(x.shape[1])
        p["inputs"] = compare.tensor_file(d / "inputs.bin", x if x.dtype == np.float32 else x.astype(np.int32))
        p["inputs64"] = compare.tensor_file(d / "inputs.i64", x) if x.dtype != np.float32 else p["inputs"]
        p["lengths32"] = compare.tensor_file(d / "lengths.i32", lengths.astype(np.int32))
        p["lengths64"] = compare.tensor_file(d / "lengths.i64", lengths)
        p["block_len"] = compare.classify_block_len(info)
    return p


def state_to(state, device):
    from longvq_ref.state import State
    return State([layer.map(lambda t: t.to(device)) for layer in state.layers], state.pos.to(device))


# -- the PyTorch side (a subprocess per model) -----------------------------------------------------
def torch_worker(spec_path: str) -> int:
    import numpy as np
    import torch
    from longvq_ref.export import load_model
    from longvq_ref.state import State
    spec = json.loads(Path(spec_path).read_text())
    device = spec["device"]
    out = {"torch": torch.__version__, "device": device, "tasks": []}
    if device == "cuda":
        out["gpu"] = torch.cuda.get_device_name(0)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def tensor(t):
        return torch.from_numpy(np.fromfile(t["file"], dtype=t["dtype"]).reshape(t["shape"])).to(device)

    def timed(fn, warmup, reps):
        for _ in range(warmup):
            fn()
        sync()
        samples = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            sync()
            samples.append(time.perf_counter() - t0)
        return samples

    models = {}
    for task in spec["tasks"]:
        print(f"torch_worker: {task['name']} {task['mode']}", file=sys.stderr, flush=True)
        res = {"name": task["name"], "mode": task["mode"]}
        try:
            if task["model"] not in models:
                models[task["model"]] = load_model(task["model"], dtype=torch.float32).to(device)
            model = models[task["model"]]
            warmup, reps = task.get("warmup", 2), task.get("reps", 5)
            with torch.inference_mode():
                res.update(run_torch_task(task, model, tensor, timed, sync, device, warmup, reps, State))
        except Exception as err:  # noqa: BLE001 - reported in the table
            res["error"] = f"{type(err).__name__}: {str(err)[:300]}"
        out["tasks"].append(res)
        print(json.dumps(res)[:300], file=sys.stderr, flush=True)
    print(json.dumps(out))
    return 0


def run_torch_task(task, model, tensor, timed, sync, device, warmup, reps, State):
    import numpy as np
    import torch
    mode, kind, res = task["mode"], task["kind"], {}
    dump = []
    if kind == "decode":
        tokens = tensor(task["tokens"])  # [steps, batch]
        base = state_to(State.load(task["state_file"], model.cfg, dtype=torch.float32), device)
        if mode == "eager":
            def run():
                st = base.clone()
                for i in range(tokens.shape[0]):
                    logits = model.step(tokens[i], st)
                    if not dump or len(dump) < tokens.shape[0]:
                        dump.append(logits)
            res["samples_s"] = timed(run, warmup, reps)
        elif mode == "graph":
            st = base.clone()
            static_tok = tokens[0].clone()
            emas = [layer.ema for layer in st.layers]

            def step():  # one decode step whose state stays in the same buffers (st's)
                logits = model.step(static_tok, st)
                for layer, e in zip(st.layers, emas):
                    e.copy_(layer.ema)
                    layer.ema = e
                return logits
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm up cuBLAS and the allocator outside the capture
                for _ in range(3):
                    step()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out_logits = step()

            def reset():
                for layer, b in zip(st.layers, base.layers):
                    for name in ("ema", "ring_codes", "ring_values", "ring_keys", "cache_u", "cache_n"):
                        if getattr(layer, name) is not None:
                            getattr(layer, name).copy_(getattr(b, name))
                st.pos.copy_(base.pos)

            def run():
                reset()
                for i in range(tokens.shape[0]):
                    static_tok.copy_(tokens[i])
                    graph.replay()
                    if len(dump) < tokens.shape[0]:
                        dump.append(out_logits.clone())
            res["samples_s"] = timed(run, warmup, reps)
        else:  # compile
            fn = torch.compile(model.step)

            def run():
                st = base.clone()
                for i in range(tokens.shape[0]):
                    logits = fn(tokens[i], st)
                    if len(dump) < tokens.shape[0]:
                        dump.append(logits)
            res["samples_s"] = timed(run, warmup, reps)
    else:
        if kind == "prefill":
            x = tensor(task["tokens"])
            call = (lambda inp: model.prefill(inp)[0])
        else:
            x, lengths = tensor(task["inputs"]), tensor(task["lengths"])
            call = (lambda inp: model(inp, lengths, block_len=task.get("block_len")))
        if mode == "eager":
            def run():
                logits = call(x)
                if not dump:
                    dump.append(logits)
            res["samples_s"] = timed(run, warmup, reps)
        elif mode == "graph":
            static_x = x.clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):
                    call(static_x)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out_logits = call(static_x)

            def run():
                graph.replay()
                if not dump:
                    dump.append(out_logits.clone())
            res["samples_s"] = timed(run, warmup, reps)
        else:
            fn = torch.compile(call)

            def run():
                logits = fn(x)
                if not dump:
                    dump.append(logits)
            res["samples_s"] = timed(run, warmup, reps)
    sync()
    if task.get("dump") and dump:
        torch.cat([t.reshape(-1) for t in dump]).float().cpu().numpy().tofile(task["dump"])
    return res


def copy_bandwidth(device: str) -> dict:
    """Device-to-device copy of 1 GiB: (read + written bytes) / time, best of 10."""
    import torch
    if device != "cuda":
        return {"error": "no GPU"}
    n = 1 << 28  # floats
    a = torch.empty(n, device="cuda")
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    best = float("inf")
    for _ in range(10):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        b.copy_(a)
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3)
    return {"bytes": 2 * 4 * n, "best_s": best, "gbs": 2 * 4 * n / best / 1e9, "gpu": torch.cuda.get_device_name(0)}


# -- running the systems ---------------------------------------------------------------------------
def run_json(cmd, spec, path: Path, timeout: float, env=None) -> dict:
    path.write_text(json.dumps(spec, indent=1))
    try:
        r = subprocess.run(cmd + [str(path)], capture_output=True, text=True, timeout=max(5.0, timeout), env=env,
                           cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    sys.stderr.write(r.stderr[-3000:])
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError:
        return {"error": f"{Path(cmd[0]).name} exited {r.returncode}: {(r.stderr or r.stdout)[-600:]}"}


def engine_task(w, info, p, dump, smoke):
    wid, key, kind, batch, size, steps = w
    t = {"name": wid, "kind": kind, "model": info.dir, "batch": batch, "warmup": 2, "reps": 5, "min_reps": 3,
         "budget_s": 2.0, "dump": str(dump)}
    if kind == "decode":
        t.update(steps=steps, state_file=p["state_file"], tokens=p["tokens32"])
    elif kind == "prefill":
        t.update(n=size, chunk=512, tokens=p["tokens32"])
    else:
        t.update(length=p["length"], inputs=p["inputs"], lengths=p["lengths32"])
    return t


def torch_task(w, info, p, mode, dump):
    wid, key, kind, batch, size, steps = w
    t = {"name": wid, "mode": mode, "kind": kind, "model": info.dir, "dump": str(dump), "warmup": 2, "reps": 5}
    if kind == "decode":
        t.update(state_file=p["state_file"], tokens=p["tokens64"])
    elif kind == "prefill":
        t.update(tokens=p["tokens64"])
    else:
        t.update(inputs=p["inputs64"], lengths=p["lengths64"], block_len=p["block_len"])
    if mode == "compile":
        t.update(warmup=1, reps=3)
    return t


def rate(res: dict, items: float):
    s = res.get("samples_s")
    if not s:
        return None
    s = sorted(s)
    return items / s[len(s) // 2]


def max_diff(a: Path, b: Path):
    import numpy as np
    if not (a.is_file() and b.is_file()):
        return None
    x, y = np.fromfile(a, np.float32), np.fromfile(b, np.float32)
    if x.shape != y.shape or x.size == 0:
        return None
    return float(np.abs(x.astype(np.float64) - y).max())


def fmt_rate(r) -> str:
    if r is None:
        return "—"
    return f"{r:,.0f}" if r >= 100 else f"{r:,.1f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", help="the engine_bench binary of a CUDA build (required)")
    ap.add_argument("--out", default="gpu-results", help="where bench.json and table.md go")
    ap.add_argument("--budget", type=float, default=180.0, help="seconds; later workloads are skipped past it")
    ap.add_argument("--compile", action="store_true", help="also torch.compile (slow to compile)")
    ap.add_argument("--smoke", action="store_true", help="on the CPU, tiny sizes: checks the plumbing only")
    ap.add_argument("--ema-perf", help="a file with test_ops's 'perf: ema' lines, for the table")
    ap.add_argument("--torch-worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.torch_worker:
        return torch_worker(args.torch_worker)
    if not args.engine:
        ap.error("--engine is required")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run_dir = WORK / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    deadline = T0 + args.budget
    import torch
    device = "cpu" if args.smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("gpu_bench: torch sees no GPU; nothing measured", file=sys.stderr)
        return 1
    try:
        git = compare.git_info()
    except OSError:  # no git on the machine
        git = {"commit": "unknown", "dirty": False}
    results = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "git": git, "torch": torch.__version__,
               "device": device, "bandwidth": copy_bandwidth(device), "workloads": {}}
    log(f"copy bandwidth: {results['bandwidth']}")
    workloads = [w for w in WORKLOADS if not args.smoke or w[0] in SMOKE]
    if args.smoke:
        workloads = [(w[0], w[1], w[2], w[3], SMOKE[w[0]] if w[2] == "prefill" else 16, SMOKE[w[0]])
                     if w[2] != "classify" else w for w in workloads]
    by_model: dict = {}
    for w in workloads:
        if time.time() > deadline - 20:
            results["workloads"][w[0]] = {"skipped": "time budget spent"}
            continue
        try:
            info = compare.model_info(w[1])  # random-100m: generated on first use (data/bench/random-100m)
            p = prepare(w, info, device)
        except Exception as err:  # noqa: BLE001
            results["workloads"][w[0]] = {"error": f"prepare: {type(err).__name__}: {err}"}
            continue
        by_model.setdefault(info.dir, []).append((w, info, p))
        results["workloads"][w[0]] = {"model": w[1], "kind": w[2], "batch": w[3], "size": w[4], "steps": w[5],
                                      "params": info.params, "weight_bytes": info.weight_bytes,
                                      "state_bytes": info.state_bytes}

    # Engine: one process, every prepared workload; then the fixed-order linear on the decodes.
    prepared = [x for items in by_model.values() for x in items]
    dumps = lambda wid, system: run_dir / f"{wid}.{system}.f32"  # noqa: E731
    engine_spec = {"threads": 1, "backend": "cpu" if args.smoke else "cuda",
                   "tasks": [engine_task(w, info, p, dumps(w[0], "engine"), args.smoke) for w, info, p in prepared]}
    log("engine (CUDA backend)")
    eng = run_json([args.engine], engine_spec, run_dir / "engine.json", deadline - time.time())
    fixed_spec = dict(engine_spec, tasks=[dict(t, dump=str(dumps(t["name"], "fixed"))) for t in engine_spec["tasks"]
                                          if t["kind"] == "decode"])
    env = dict(os.environ, LONGVQ_CUDA_LINEAR="fixed")
    log("engine, fixed-order linear")
    fixed = run_json([args.engine], fixed_spec, run_dir / "engine-fixed.json", deadline - time.time(), env)
    for system, o in (("engine", eng), ("engine fixed", fixed)):
        for t in o.get("tasks", []):
            results["workloads"][t["name"]][system] = t
        if "error" in o:
            for w, _, _ in prepared:
                results["workloads"][w[0]].setdefault(system, {"error": o["error"]})

    # PyTorch: one process per model and mode (a failing capture or compile cannot take the others down).
    modes = ["eager"] + ([] if args.smoke else ["graph"]) + (["compile"] if args.compile else [])
    for mdir, items in by_model.items():
        for mode in modes:
            left = deadline - time.time()
            if left < 15:
                for w, _, _ in items:
                    results["workloads"][w[0]][f"torch {mode}"] = {"skipped": "time budget spent"}
                continue
            spec = {"device": device, "tasks": [torch_task(w, info, p, mode, dumps(w[0], f"torch-{mode}"))
                                                for w, info, p in items]}
            log(f"torch {mode}: {Path(mdir).name}")
            o = run_json([sys.executable, str(Path(__file__).resolve()), "--torch-worker"], spec,
                         run_dir / f"torch-{mode}-{Path(mdir).name}.json", min(left, 150 if mode == "compile" else left))
            for w, _, _ in items:
                results["workloads"][w[0]][f"torch {mode}"] = {"error": o["error"]} if "error" in o else {}
            for t in o.get("tasks", []):
                results["workloads"][t["name"]][f"torch {mode}"] = t
    for wid, r in results["workloads"].items():
        for system in ("engine fixed", "torch eager", "torch graph", "torch compile"):
            key = system.replace(" ", "-") if system != "engine fixed" else "fixed"
            d = max_diff(dumps(wid, key), dumps(wid, "engine"))
            if d is not None and system in r:
                r[system]["max_diff_vs_engine"] = d
    if args.ema_perf and Path(args.ema_perf).is_file():
        results["ema_perf"] = [line for line in Path(args.ema_perf).read_text().splitlines() if line.startswith("perf: ema")]
    (out / "bench.json").write_text(json.dumps(results, indent=1))
    table = render(results)
    (out / "table.md").write_text(table)
    print(table)
    return 0


def render(res: dict) -> str:
    bw = res["bandwidth"]
    lines = [f"## GPU benchmark ({bw.get('gpu', res['device'])}, torch {res['torch']}, commit {res['git']['commit']}"
             f"{' dirty' if res['git']['dirty'] else ''}, {res['started']})", ""]
    gbs = bw.get("gbs")
    lines.append(f"Copy bandwidth (device-to-device, read + write): {gbs:,.0f} GB/s." if gbs else
                 f"Copy bandwidth: not measured ({bw.get('error')}).")
    lines += ["", "| workload | model | unit | engine CUDA | engine fixed-order linear | torch eager | torch CUDA graph "
              "| torch compile | engine / best torch | bytes / token | roofline | engine % of roofline | max abs diff vs engine |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for wid, r in res["workloads"].items():
        if "skipped" in r or ("error" in r and "kind" not in r):
            lines.append(f"| {wid} | | | {r.get('skipped') or r.get('error')} | | | | | | | | | |")
            continue
        kind, batch = r["kind"], r["batch"]
        items = batch * (r["steps"] if kind == "decode" else r["size"] if kind == "prefill" else 1)
        unit = "seq/s" if kind == "classify" else "tok/s"
        cells, rates = [], {}
        for system in ("engine", "engine fixed", "torch eager", "torch graph", "torch compile"):
            s = r.get(system)
            if s is None or (system == "engine fixed" and kind != "decode"):
                cells.append("—")
                continue
            if "error" in s or "skipped" in s:
                cells.append("error" if "error" in s else "skipped")
                notes.append(f"{wid}, {system}: {s.get('error') or s.get('skipped')}")
                continue
            rates[system] = rate(s, items)
            cells.append(fmt_rate(rates[system]))
        best_torch = max((v for k, v in rates.items() if k.startswith("torch") and v), default=None)
        ratio = f"{rates['engine'] / best_torch:.2f}×" if rates.get("engine") and best_torch else "—"
        bpt = roof = eff = "—"
        if kind == "decode" and gbs:
            step_bytes = r["weight_bytes"] + batch * r["state_bytes"]
            bpt = compare.human_bytes(step_bytes / batch)
            roof_rate = batch * gbs * 1e9 / step_bytes
            roof = fmt_rate(roof_rate)
            if rates.get("engine"):
                eff = f"{100 * rates['engine'] / roof_rate:.0f}%"
        diffs = [f"{k.split()[-1]} {r[k]['max_diff_vs_engine']:.2g}" for k in ("torch eager", "torch graph", "torch compile",
                                                                               "engine fixed")
                 if isinstance(r.get(k), dict) and "max_diff_vs_engine" in r[k]]
        label = {"decode": f"decode b{batch} @{r['size']}", "prefill": f"prefill {r['size']}",
                 "classify": f"classify b{batch}"}[kind]
        lines.append(f"| {label} | {r['model']} | {unit} | " + " | ".join(cells) +
                     f" | {ratio} | {bpt} | {roof} | {eff} | {', '.join(diffs) or '—'} |")
    lines += ["", "Rates are medians of the timed repetitions (decode: tokens of all rows per second; prefill: "
              "prompt tokens per second; classify: sequences per second). Bytes / token (decode) = (stored weight "
              "bytes + B × state bytes per sequence) / B; roofline = the copy bandwidth over that."]
    if res.get("ema_perf"):
        lines += ["", "EMA on the GPU, FFT form vs chunked scan (test_ops \"[.perf]\"):", "", "```", *res["ema_perf"], "```"]
    if notes:
        lines += ["", "Notes:", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
