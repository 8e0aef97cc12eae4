#!/usr/bin/python3
"""longvq CPU comparison harness: the engine against its peers and the machine's physical limits.

  /usr/bin/python3 tools/bench/compare.py            full run (~15 min): writes docs/benchmarks.md
  /usr/bin/python3 tools/bench/compare.py --quick    small run (~3 min once caches exist)
  /usr/bin/python3 tools/bench/compare.py --only 'decode-*'   some workloads (--list names them)
  /usr/bin/python3 tools/bench/compare.py --show     reprint the last table, measuring nothing

Every workload runs the same model on the same inputs (files written once here) through
  engine   the C++ engine via tools/bench/engine_bench.cpp (built here in build-bench/)
  PyTorch  the reference tools/longvq_ref in eager mode, float32, in a subprocess per thread count
  ORT      ONNX Runtime CPU (npm onnxruntime-node, tools/bench/ort_run.mjs) on an opset-14 export
at 1 and 2 threads, each with warmup runs and repetitions (median and spread), and measures in
the same run a STREAM-like read bandwidth and the FMA peak (tools/bench/limits.c), from which it
derives the fastest each workload could possibly run on this machine. Results go to
data/bench/results.json (every run) and, for a full run, docs/benchmarks.md.
Speed checks are benchmarks, never timed tests: nothing here fails because something is slow.
"""
from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import hashlib
import json
import math
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TOOLS = REPO / "tools"
sys.path.insert(0, str(TOOLS))
sys.path.insert(0, str(HERE))

WORK = REPO / "data" / "bench"
CACHE = WORK / "cache"
RUN = WORK / "run"
RESULTS = WORK / "results.json"
DOC = REPO / "docs" / "benchmarks.md"
BUILD = REPO / "build-bench"
HARNESS_VERSION = 1
THREADS = (1, 2)
SYSTEMS = ("engine", "torch", "ort")
SYSTEM_TITLES = {"engine": "engine", "torch": "PyTorch eager", "ort": "ONNX Runtime"}
T0 = time.time()


def log(msg: str) -> None:
    print(f"[{time.time() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


# -- machine, commit, concurrent load ------------------------------------------------------------
def machine_info() -> dict:
    info = {"cores": os.cpu_count(), "kernel": platform.release()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        fields_ = {}
        for line in cpuinfo.splitlines():
            if ":" in line:
                k, v = (s.strip() for s in line.split(":", 1))
                fields_.setdefault(k, v)
        info["cpu"] = fields_.get("model name", "unknown")
        info["cpu_family_model"] = f"family {fields_.get('cpu family')} model {fields_.get('model')}"
        flags = fields_.get("flags", "").split()
        info["simd"] = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE"
        info["mhz"] = fields_.get("cpu MHz")
        mem = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
        info["memory_gib"] = round(int(mem) / 2**20, 1)
    except OSError:
        info.setdefault("cpu", platform.processor() or "unknown")
    info["env"] = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS_", "OMP_", "MKL_"))}
    return info


def git_info() -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "--short", "HEAD") or "unknown", "dirty": bool(dirty),
            "dirty_files": dirty.splitlines()[:20]}


def training_jobs() -> list:
    """Other processes known to load the CPU in this project: the model trainers."""
    out = subprocess.run(["pgrep", "-f", "longvq_ref.train"], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out if int(p) != os.getpid()]


def loadavg() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return float("nan")


# -- building the tools -------------------------------------------------------------------------
def build_tools(systems) -> dict:
    BUILD.mkdir(exist_ok=True)
    out = {}
    cc = shutil.which("cc") or shutil.which("gcc")
    limits = BUILD / "limits"
    src = HERE / "limits.c"
    if not limits.exists() or limits.stat().st_mtime < src.stat().st_mtime:
        log("building tools/bench/limits.c")
        subprocess.run([cc, "-O3", "-march=native", "-fopenmp", str(src), "-o", str(limits)], check=True)
    out["limits"] = str(limits)
    if "engine" in systems:
        log("building the engine driver (cmake -S tools/bench -B build-bench; target engine_bench)")
        if not (BUILD / "CMakeCache.txt").exists():
            subprocess.run(["cmake", "-S", str(HERE), "-B", str(BUILD), "-DCMAKE_BUILD_TYPE=Release"],
                           check=True, stdout=subprocess.DEVNULL)
        r = subprocess.run(["cmake", "--build", str(BUILD), "--target", "engine_bench", "-j", str(os.cpu_count())],
                           capture_output=True, text=True)
        if r.returncode != 0:
            out["engine_error"] = "engine build failed: " + (r.stdout + r.stderr)[-1500:]
            log(out["engine_error"])
        else:
            out["engine"] = str(BUILD / "engine_bench")
    if "ort" in systems:
        if not (HERE / "node_modules" / "onnxruntime-node").exists():
            log("installing onnxruntime-node into tools/bench/node_modules")
            env = dict(os.environ, ONNXRUNTIME_NODE_INSTALL="skip")
            r = subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=HERE, env=env,
                               capture_output=True, text=True)
            if r.returncode != 0:
                out["ort_error"] = "npm install onnxruntime-node failed: " + (r.stdout + r.stderr)[-800:]
        if "ort_error" not in out:
            out["ort"] = "node " + str(HERE / "ort_run.mjs")
    return out


# -- models ----------------------------------------------------------------------------------------
RANDOM_100M = dict(vocab_size=257, d_model=1024, hidden_dim=2048, z_dim=256, ema_ndim=16, ffn_dim=2048, n_layers=8,
                   attention=dict(codebook_size=256, window=64, quantize_window_keys=True), norm="layernorm",
                   prenorm=True, final_norm_affine=True, task="lm", embedding=dict(kind="token", scale=32.0),
                   tie_embeddings=True, tokenizer=dict(kind="bytes", specials=["<bos>"]))


@dataclass
class ModelInfo:
    key: str
    dir: str
    note: str  # "" for the real model, else why a stand-in is used
    params: int = 0
    weight_bytes: int = 0  # bytes of the stored weights (f32 or bf16), every one read once per decode step
    state_bytes: int = 0  # decoding state per sequence (LMs)
    flops: dict = field(default_factory=dict)  # model FLOPs per token: decode / causal / bidirectional
    config: dict = field(default_factory=dict)


def model_complete(d: Path) -> bool:
    return (d / "config.json").is_file() and (d / "model.safetensors").is_file()


def ensure_random(out: Path, cfg_dict: dict, seed: int = 0, calib_batch: int = 4, calib_len: int = 256) -> Path:
    """A random model of this config, generated once (codebooks from k-means on its own keys)."""
    from longvq_ref.config import Config
    from longvq_ref.export import parameter_count, random_model, save_model
    import torch
    cfg = Config.from_dict(cfg_dict)
    stamp = out / "bench-stamp.json"
    want = {"config": cfg.to_dict(), "seed": seed, "calib": [calib_batch, calib_len]}
    if model_complete(out) and stamp.is_file() and json.loads(stamp.read_text()) == want:
        return out
    log(f"generating {out.relative_to(REPO)} ({parameter_count(cfg):,} parameters, random weights) ...")
    torch.set_num_threads(os.cpu_count() or 1)
    model = random_model(cfg, seed=seed, calib_batch=calib_batch, calib_len=calib_len)
    save_model(model, out, card=f"# {out.name}\n\nRandom weights for tools/bench/compare.py (seed {seed}); "
                                f"{parameter_count(cfg):,} parameters. Not a trained model.\n")
    stamp.write_text(json.dumps(want))
    return out


def ensure_bf16(src: Path, out: Path) -> Path:
    """A copy of `src` with bf16 weight matrices (export convert --bf16), made once per source file."""
    from longvq_ref.export import load_model, save_model
    st = (src / "model.safetensors").stat()
    want = {"source": str(src), "size": st.st_size, "mtime": st.st_mtime}
    stamp = out / "bench-stamp.json"
    if model_complete(out) and stamp.is_file() and json.loads(stamp.read_text()) == want:
        return out
    log(f"converting {src.relative_to(REPO)} to bf16 matrices in {out.relative_to(REPO)} ...")
    save_model(load_model(src), out, card=f"# {out.name}\n\n{src.name} with bf16 weight matrices, for "
                                           "tools/bench/compare.py.\n", bf16=True)
    stamp.write_text(json.dumps(want))
    return out


def stored_weight_bytes(d: Path) -> int:
    """Bytes of the tensors in d/model.safetensors (its header's data offsets)."""
    with open(d / "model.safetensors", "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    return sum(v["data_offsets"][1] - v["data_offsets"][0] for k, v in header.items() if k != "__metadata__")


def model_dir(key: str) -> tuple[Path, str]:
    """The model directory for a workload key, and a note when a stand-in replaces a missing one."""
    if key.endswith("-bf16"):
        src, note = model_dir(key[:-len("-bf16")])
        return ensure_bf16(src, WORK / "bf16" / src.name), note
    if key == "random-100m":
        return ensure_random(WORK / "random-100m", RANDOM_100M), ""
    real = REPO / "models" / key
    if model_complete(real):
        return real, ""
    from longvq_ref.recipes import RECIPES
    cfg = RECIPES[key]().config
    d = ensure_random(WORK / "standin" / key, cfg.to_dict(), calib_len=512 if cfg.task == "classify" else 256)
    return d, f"models/{key} was not there: random stand-in of the same config"


def layer_flops(cfg, keys: int) -> int:
    """Model FLOPs per token and layer (a multiply-add = 2): projections, FFN, EMA recurrence,
    quantization, and attention over `keys` scored keys (window + current) plus S codes."""
    d, h, e, n_dim, f = cfg.d_model, cfg.hidden_dim, cfg.z_dim, cfg.ema_ndim, cfg.ffn_dim
    s = cfg.attention.codebook_size
    proj = 2 * d * h + 2 * d * cfg.mx_dim + 2 * h * d + 4 * d * f
    ema = 4 * cfg.ema_channels * n_dim
    vq = 2 * 2 * e * s  # K·C (codes) and Q·C (scores)
    attn = 2 * (keys + s) * h
    return proj + ema + vq + attn


def model_info(key: str) -> ModelInfo:
    from longvq_ref.config import Config
    from longvq_ref.export import parameter_count
    d, note = model_dir(key)
    cfg = Config.load(d / "config.json")
    p = parameter_count(cfg)
    a = cfg.attention
    state = 0
    if cfg.task == "lm":
        state = cfg.n_layers * 4 * (cfg.d_model * cfg.ema_ndim + a.window * (1 + cfg.hidden_dim)
                                    + (0 if a.quantize_window_keys else a.window * cfg.z_dim)
                                    + a.codebook_size * (cfg.hidden_dim + 1)) + 8
    head = 2 * cfg.d_model * cfg.vocab_size if cfg.task == "lm" else 0
    flops = {"decode": cfg.n_layers * layer_flops(cfg, a.window + 1) + head,
             "causal": cfg.n_layers * layer_flops(cfg, a.window + 1) + head,
             "bidirectional": cfg.n_layers * layer_flops(cfg, 2 * a.window + 1)}
    return ModelInfo(key, str(d), note, p, stored_weight_bytes(d), state, flops, cfg.to_dict())


# -- workloads -----------------------------------------------------------------------------------
@dataclass
class Workload:
    id: str
    title: str
    model: str
    kind: str  # decode | prefill | classify
    batch: int = 1
    depth: int = 0  # decode: context tokens before the timed steps
    steps: int = 0  # decode: timed steps per repetition
    n: int = 0  # prefill: prompt tokens
    reps: int = 5
    min_reps: int = 3
    warmup: int = 2  # untimed runs first (each cell is a fresh process: allocator, caches, threads)
    budget_s: float = 4.0
    quick: bool = True  # part of --quick

    @property
    def unit(self) -> str:
        return "seq/s" if self.kind == "classify" else "tok/s"


def workloads(quick: bool) -> list:
    s = (lambda full, q: q if quick else full)
    w = [
        Workload("decode-b1-austen", "decode b1 @512", "austen-lm", "decode", 1, 512, s(64, 16), budget_s=s(3, 1)),
        Workload("decode-b8-austen", "decode b8 @512", "austen-lm", "decode", 8, 512, s(64, 16), budget_s=s(3, 1)),
        Workload("decode-b1-austen-bf16", "decode b1 @512, bf16 matrices", "austen-lm-bf16", "decode", 1, 512,
                 s(64, 16), budget_s=s(3, 1)),
        Workload("decode-b1-100m", "decode b1 @512", "random-100m", "decode", 1, 512, s(16, 4), budget_s=s(5, 1)),
        Workload("decode-b1-100m-bf16", "decode b1 @512, bf16 matrices", "random-100m-bf16", "decode", 1, 512,
                 s(16, 4), budget_s=s(5, 1), quick=False),
        Workload("decode-b8-100m", "decode b8 @512", "random-100m", "decode", 8, 512, s(16, 4), budget_s=s(6, 1)),
        Workload("prefill-4096-austen", "prefill 4096", "austen-lm", "prefill", 1, n=4096, budget_s=s(5, 1)),
        Workload("prefill-4096-100m", "prefill 4096", "random-100m", "prefill", 1, n=4096, reps=3, min_reps=2,
                 warmup=1, budget_s=10, quick=False),  # one PyTorch run takes ~30 s
        Workload("classify-listops", "classify b16", "listops", "classify", 16, budget_s=s(5, 1)),
        Workload("classify-fashion", "classify b16", "fashion-seq", "classify", 16, budget_s=s(5, 1)),
        Workload("decode-b1-austen-d65536", "decode b1 @65536", "austen-lm", "decode", 1, 65536, s(64, 16),
                 budget_s=s(3, 1)),
    ]
    if quick:
        w = [x for x in w if x.quick]
        for x in w:
            x.reps, x.min_reps = min(x.reps, 3), min(x.min_reps, 2)
    return w


# -- inputs ----------------------------------------------------------------------------------------
def tensor_file(path: Path, array) -> dict:
    import numpy as np
    a = np.ascontiguousarray(array)
    path.parent.mkdir(parents=True, exist_ok=True)
    a.tofile(path)
    return {"file": str(path), "dtype": str(a.dtype), "shape": list(a.shape)}


def text_bytes(count: int):
    """`count` bytes of the held-out Austen text (random bytes when the data is not prepared)."""
    import numpy as np
    try:
        from longvq_data import austen
        data = np.frombuffer(austen.load("test"), dtype=np.uint8).astype(np.int64)
    except Exception:  # noqa: BLE001 - any reason the corpus is missing
        data = np.random.default_rng(0).integers(0, 256, 1 << 16)
    return np.resize(data, count)


def classify_inputs(info: ModelInfo, batch: int):
    """The first `batch` test examples at their real lengths (padded to the longest), lengths."""
    import numpy as np
    cfg = info.config
    rows = None
    try:
        if cfg["tokenizer"]["kind"] == "pixels":
            from longvq_data import fashion
            from longvq_ref.config import Config
            from longvq_ref.tokenizer import Tokenizer
            images, _ = fashion.load("test")
            tok = Tokenizer(Config.from_dict(cfg).tokenizer)
            rows = [np.asarray(x, dtype=np.float32) for x in list(tok.encode_pixels(images[:batch]))]
        else:
            from longvq_data import listops
            index = {t: i for i, t in enumerate(cfg["tokenizer"]["tokens"])}
            rows = [np.array([index[t] for t in toks], dtype=np.int64) for toks, _ in listops.load("test")[:batch]]
    except Exception as err:  # noqa: BLE001
        log(f"test data for {info.key} unavailable ({err}); using random inputs")
    if rows is None:
        rng = np.random.default_rng(0)
        if cfg["tokenizer"]["kind"] == "pixels":
            rows = [rng.standard_normal(784).astype(np.float32) for _ in range(batch)]
        else:
            rows = [rng.integers(0, cfg["vocab_size"], rng.integers(500, 2000)) for _ in range(batch)]
    n = max(len(r) for r in rows)
    real = rows[0].dtype == np.float32
    x = np.zeros((batch, n), dtype=np.float32 if real else np.int64)
    for b, r in enumerate(rows):
        x[b, :len(r)] = r
    return x, np.array([len(r) for r in rows], dtype=np.int64)


def cache_key(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def model_stamp(info: ModelInfo) -> list:
    st = (Path(info.dir) / "model.safetensors").stat()
    export_src = hashlib.sha1((HERE / "onnx_export.py").read_bytes()).hexdigest()[:12]
    return [info.dir, st.st_size, st.st_mtime_ns, HARNESS_VERSION, export_src]


_loaded = {}


def ref_model(info: ModelInfo):
    import torch
    from longvq_ref.export import load_model
    if info.key not in _loaded:
        _loaded[info.key] = load_model(info.dir, dtype=torch.float32)
    return _loaded[info.key]


def classify_block_len(info: ModelInfo):
    """The attention block the trained classifiers use (speed only; results do not depend on it)."""
    try:
        from longvq_ref.recipes import RECIPES
        return RECIPES[info.key]().block_len
    except Exception:  # noqa: BLE001
        return None


def prepare(w: Workload, info: ModelInfo, want_ort: bool) -> dict:
    """Input files shared by every system, the decoding state, and the ONNX export (cached)."""
    import numpy as np
    import torch
    from longvq_ref.state import State
    import onnx_export
    d = CACHE / f"{w.id}-{cache_key(model_stamp(info), asdict(w))}"
    d.mkdir(parents=True, exist_ok=True)
    p = {"dir": str(d)}
    done = d / "prepared.json"
    if done.is_file():
        p = json.loads(done.read_text())
        if p.get("onnx") or p.get("onnx_error") or not want_ort:
            return p
    torch.set_num_threads(os.cpu_count() or 1)
    model = ref_model(info)
    if w.kind == "decode":
        if "state_file" not in p:
            text = text_bytes(w.batch * (w.depth + w.steps) + 1)
            seqs = np.stack([np.concatenate([[256], text[b * (w.depth + w.steps):(b + 1) * (w.depth + w.steps)]])
                             for b in range(w.batch)])  # <bos> then text, one stretch per sequence
            context, nxt = seqs[:, :w.depth], seqs[:, w.depth:w.depth + w.steps]
            log(f"{w.id}: reference prefill of {w.batch}×{w.depth} context tokens for the shared state")
            t = time.time()
            with torch.inference_mode():
                state = model.init_state(w.batch)
                for a in range(0, w.depth, 4096):
                    _, state = model.prefill(torch.from_numpy(context[:, a:a + 4096]), state)
            p["state_prefill_s"] = time.time() - t
            state.save(d / "state.safetensors", model.cfg)
            p["state_file"] = str(d / "state.safetensors")
            p["tokens32"] = tensor_file(d / "tokens.i32", nxt.T.astype(np.int32))  # [steps, batch]
            p["tokens64"] = tensor_file(d / "tokens.i64", nxt.T.astype(np.int64))
        if want_ort and "onnx" not in p:
            state = State.load(p["state_file"], model.cfg, dtype=torch.float32)
            onnx = d / "step.onnx"
            log(f"{w.id}: exporting the decode step to ONNX")
            try:
                names = onnx_export.export_step(model, state, onnx)
                p["onnx"] = str(onnx)
                p["state_names"] = ["pos", *names]
                flat = dict(zip(names, onnx_export.flatten_state(state)))
                p["ort_inputs"] = {"pos": tensor_file(d / "pos.i64", state.pos.numpy())}
                for n, t in flat.items():
                    p["ort_inputs"][n] = tensor_file(d / f"{n}.bin", t.numpy())
            except Exception as err:  # noqa: BLE001 - the reason goes into the table
                p["onnx_error"] = f"decode step export failed: {type(err).__name__}: {str(err)[:300]}"
    elif w.kind == "prefill":
        if "tokens32" not in p:
            tokens = np.concatenate([[256], text_bytes(w.n - 1)])[None].repeat(w.batch, 0)
            p["tokens32"] = tensor_file(d / "tokens.i32", tokens.astype(np.int32))
            p["tokens64"] = tensor_file(d / "tokens.i64", tokens.astype(np.int64))
        if want_ort and "onnx" not in p:
            onnx = d / "forward.onnx"
            log(f"{w.id}: exporting the whole-sequence LM forward [{w.batch}, {w.n}] to ONNX")
            try:
                onnx_export.export_forward(model, torch.from_numpy(np.fromfile(p["tokens64"]["file"], np.int64)
                                                                   .reshape(w.batch, w.n)), None, onnx)
                p["onnx"] = str(onnx)
                p["ort_inputs"] = {"inputs": p["tokens64"]}
            except Exception as err:  # noqa: BLE001
                p["onnx_error"] = f"forward export failed: {type(err).__name__}: {str(err)[:300]}"
    else:
        if "inputs" not in p:
            x, lengths = classify_inputs(info, w.batch)
            p["length"] = int(x.shape[1])
            p["lengths_list"] = lengths.tolist()
            p["inputs"] = tensor_file(d / "inputs.bin", x if x.dtype == np.float32 else x.astype(np.int32))
            p["inputs64"] = tensor_file(d / "inputs.i64", x) if x.dtype != np.float32 else p["inputs"]
            p["lengths32"] = tensor_file(d / "lengths.i32", lengths.astype(np.int32))
            p["lengths64"] = tensor_file(d / "lengths.i64", lengths)
            p["block_len"] = classify_block_len(info)
        if want_ort and "onnx" not in p:
            onnx = d / "forward.onnx"
            log(f"{w.id}: exporting the classifier forward [{w.batch}, {p['length']}] to ONNX")
            x = np.fromfile(p["inputs64"]["file"], p["inputs64"]["dtype"]).reshape(p["inputs64"]["shape"])
            lengths = torch.from_numpy(np.fromfile(p["lengths64"]["file"], np.int64))
            try:
                onnx_export.export_forward(model, torch.from_numpy(x), lengths, onnx, block_len=p["block_len"])
                p["onnx"] = str(onnx)
                p["ort_inputs"] = {"inputs": p["inputs64"], "lengths": p["lengths64"]}
            except Exception as err:  # noqa: BLE001
                p["onnx_error"] = f"classifier export failed: {type(err).__name__}: {str(err)[:300]}"
    done.write_text(json.dumps(p, indent=1))
    return p


# -- the three systems -----------------------------------------------------------------------------
def common_task(w: Workload, dump: Path | None) -> dict:
    t = {"name": w.id, "warmup": w.warmup, "reps": w.reps, "min_reps": w.min_reps, "budget_s": w.budget_s}
    if dump is not None:
        t["dump"] = str(dump)
    return t


def engine_task(w, info, p, dump):
    t = dict(common_task(w, dump), kind=w.kind, model=info.dir, batch=w.batch)
    if w.kind == "decode":
        t.update(steps=w.steps, state_file=p["state_file"], tokens=p["tokens32"])
    elif w.kind == "prefill":
        t.update(n=w.n, chunk=512, tokens=p["tokens32"])
    else:
        t.update(length=p["length"], inputs=p["inputs"], lengths=p["lengths32"])
    return t


def torch_task(w, info, p, dump):
    t = dict(common_task(w, dump), kind=w.kind, model=info.dir, batch=w.batch)
    if w.kind == "decode":
        t.update(steps=w.steps, state_file=p["state_file"], tokens=p["tokens64"])
    elif w.kind == "prefill":
        t.update(n=w.n, tokens=p["tokens64"])
    else:
        t.update(length=p["length"], inputs=p["inputs64"], lengths=p["lengths64"], block_len=p["block_len"])
    return t


def ort_task(w, info, p, dump):
    if not p.get("onnx"):
        return None
    t = dict(common_task(w, dump), onnx=p["onnx"], inputs=p["ort_inputs"], output="logits")
    if w.kind == "decode":
        t.update(kind="decode", tokens=p["tokens64"], state_names=p["state_names"])
    else:
        t.update(kind="run")
    return t


def run_json(cmd: list, spec: dict, path: Path, env=None, timeout=1800) -> dict:
    path.write_text(json.dumps(spec, indent=1))
    r = subprocess.run(cmd + [str(path)], capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError:
        return {"error": f"{' '.join(cmd[:2])} exited {r.returncode}: {(r.stderr or r.stdout)[-800:]}"}


def thread_env(threads: int) -> dict:
    # BLAS and OpenMP fix their thread pools when the library loads: set them before the process starts.
    return dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
                MKL_NUM_THREADS=str(threads))


def torch_worker(spec_path: str) -> int:
    """Subprocess side of the PyTorch peer: runs the tasks of SPEC at its thread count."""
    import numpy as np
    import torch
    from longvq_ref.export import load_model
    from longvq_ref.state import State
    spec = json.loads(Path(spec_path).read_text())
    threads = spec["threads"]
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    blas = sorted({line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines()
                   if "blas" in line.lower() and "/" in line})
    out = {"threads": threads, "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
           "blas": blas, "tasks": []}
    models = {}

    def tensor(t):
        return torch.from_numpy(np.fromfile(t["file"], dtype=t["dtype"]).reshape(t["shape"]))

    for task in spec["tasks"]:
        print(f"torch_worker: {task['name']} (threads {threads})", file=sys.stderr, flush=True)
        res = {"name": task["name"]}
        try:
            if task["model"] not in models:
                t0 = time.perf_counter()
                models[task["model"]] = load_model(task["model"], dtype=torch.float32)
                res["load_s"] = time.perf_counter() - t0
            model = models[task["model"]]
            dumped = []
            if task["kind"] == "decode":
                tokens = tensor(task["tokens"])  # [steps, batch]
                base = (State.load(task["state_file"], model.cfg, dtype=torch.float32) if task.get("state_file")
                        else model.init_state(task["batch"]))

                def once(record):
                    state = base.clone()
                    t0 = time.perf_counter()
                    for i in range(tokens.shape[0]):
                        logits = model.step(tokens[i], state)
                        if record:
                            dumped.append(logits.numpy().copy())
                    return time.perf_counter() - t0
            elif task["kind"] == "prefill":
                tokens = tensor(task["tokens"])

                def once(record):
                    t0 = time.perf_counter()
                    logits, _ = model.prefill(tokens)
                    s = time.perf_counter() - t0
                    if record:
                        dumped.append(logits.numpy().copy())
                    return s
            else:
                x, lengths = tensor(task["inputs"]), tensor(task["lengths"])

                def once(record):
                    t0 = time.perf_counter()
                    logits = model(x, lengths, block_len=task.get("block_len"))
                    s = time.perf_counter() - t0
                    if record:
                        dumped.append(logits.numpy().copy())
                    return s
            with torch.inference_mode():
                warm = 0.0
                for r in range(task.get("warmup", 1)):
                    warm = once(r == 0 and "dump" in task)
                reps = task.get("reps", 5)
                if task.get("budget_s") and warm > 0:
                    reps = max(min(task.get("min_reps", 3), reps), min(reps, int(task["budget_s"] / warm)))
                res["samples_s"] = [once(False) for _ in range(reps)]
            if "dump" in task:
                np.concatenate([a.reshape(-1) for a in dumped]).astype(np.float32).tofile(task["dump"])
        except Exception as err:  # noqa: BLE001 - reported in the table
            res["error"] = f"{type(err).__name__}: {err}"
        out["tasks"].append(res)
    print(json.dumps(out, indent=1))
    return 0


def run_system(system: str, threads: int, tasks: list, tools: dict) -> dict:
    """All tasks of one system at one thread count, in one process: {name: result}."""
    if not tasks:
        return {}
    spec = {"threads": threads, "tasks": tasks}
    path = RUN / f"spec-{system}-t{threads}.json"
    env = thread_env(threads)
    if system == "engine":
        if "engine" not in tools:
            return {t["name"]: {"error": tools.get("engine_error", "engine driver not built")} for t in tasks}
        out = run_json([tools["engine"]], spec, path, env)
    elif system == "torch":
        out = run_json([sys.executable, str(Path(__file__).resolve()), "--torch-worker"], spec, path, env)
    else:
        if "ort" not in tools:
            return {t["name"]: {"error": tools.get("ort_error", "onnxruntime-node missing")} for t in tasks}
        out = run_json(["node", str(HERE / "ort_run.mjs")], spec, path, env)
    if "error" in out and "tasks" not in out:
        return {t["name"]: {"error": out["error"]} for t in tasks}
    meta = {k: v for k, v in out.items() if k != "tasks"}
    return {r["name"]: dict(r, process=meta) for r in out["tasks"]}


# -- physical limits ---------------------------------------------------------------------------------
def measure_limits(tools: dict, quick: bool) -> dict:
    out = {"stream": {}, "fma": {}}
    mib = 1024
    for t in THREADS:
        r = subprocess.run([tools["limits"], "stream", str(t), str(mib), "3" if quick else "7"],
                           capture_output=True, text=True, env=thread_env(t))
        out["stream"][str(t)] = json.loads(r.stdout)
        r = subprocess.run([tools["limits"], "fma", str(t)], capture_output=True, text=True, env=thread_env(t))
        out["fma"][str(t)] = json.loads(r.stdout)
        log(f"limits, {t} thread(s): read {out['stream'][str(t)]['best_gbs']:.1f} GB/s, "
            f"FMA {out['fma'][str(t)]['gflops']:.0f} GFLOP/s")
    return out


def bound(w: Workload, info: ModelInfo, p: dict, limits: dict, threads: int) -> dict:
    """The fastest this workload could run here: bytes ÷ read bandwidth vs FLOPs ÷ FMA peak."""
    bw = limits["stream"][str(threads)]["best_gbs"] * 1e9
    peak = limits["fma"][str(threads)]["gflops"] * 1e9
    if w.kind == "decode":  # per step: every weight once, plus each sequence's state
        nbytes = info.weight_bytes + w.batch * info.state_bytes
        flops = w.batch * info.flops["decode"]
        items = w.batch
    elif w.kind == "prefill":
        nbytes, flops, items = info.weight_bytes, w.batch * w.n * info.flops["causal"], w.batch * w.n
    else:
        nbytes = info.weight_bytes
        flops = w.batch * p["length"] * info.flops["bidirectional"]
        items = w.batch
    t_bytes, t_flops = nbytes / bw, flops / peak
    t = max(t_bytes, t_flops)
    return {"bytes": nbytes, "flops": flops, "t_bytes_s": t_bytes, "t_flops_s": t_flops,
            "limited_by": "memory" if t_bytes >= t_flops else "FMA", "rate": items / t}


# -- statistics, parity, assembly -------------------------------------------------------------------
def summarize(res: dict, items: float) -> dict:
    if not res or "samples_s" not in res or not res["samples_s"]:
        return {"error": (res or {}).get("error", "not run")}
    s = res["samples_s"]
    med = statistics.median(s)
    return {"samples_s": s, "median_s": med, "rate": items / med, "spread": (max(s) - min(s)) / 2 / med,
            "reps": len(s)}


def items_per_run(w: Workload) -> float:
    return {"decode": w.batch * w.steps, "prefill": w.batch * w.n, "classify": w.batch}[w.kind]


def max_diff(a_path: Path, ref_path: Path):
    import numpy as np
    if not a_path.is_file() or not ref_path.is_file():
        return None
    a, r = np.fromfile(a_path, np.float32), np.fromfile(ref_path, np.float32)
    if a.shape != r.shape:
        return {"error": f"{a.size} values vs the reference's {r.size}"}
    return {"max_abs": float(np.abs(a - r).max()), "ref_max_abs": float(np.abs(r).max())}


def run_all(args) -> dict:
    quick = args.quick
    systems = [s for s in SYSTEMS if s in args.systems.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    ws = workloads(quick)
    if args.only:
        ws = [w for w in ws if any(fnmatch.fnmatch(w.id, pat) for pat in args.only.split(","))]
        if not ws:
            raise SystemExit(f"--only {args.only}: no workload matches; --list names them")
    jobs_before = training_jobs()
    meta = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), **git_info(),
            "machine": machine_info(), "command": "/usr/bin/python3 tools/bench/compare.py " + " ".join(args.argv),
            "quick": quick, "only": args.only, "threads": threads, "systems": systems,
            "loadavg_before": loadavg(), "training_jobs_before": jobs_before, "harness_version": HARNESS_VERSION}
    if jobs_before:
        log(f"WARNING: {len(jobs_before)} training job(s) (pgrep -f longvq_ref.train) share the CPU: "
            "numbers will be low and noisy")
    RUN.mkdir(parents=True, exist_ok=True)
    for f in RUN.glob("*.out"):
        f.unlink()
    tools = build_tools(systems)
    meta["build_errors"] = {k: v for k, v in tools.items() if k.endswith("_error")}

    log("models and inputs")
    infos = {}
    for w in ws:
        if w.model not in infos:
            infos[w.model] = model_info(w.model)
    prepared = {w.id: prepare(w, infos[w.model], "ort" in systems) for w in ws}
    t_prep = time.time() - T0

    log("physical limits")
    limits = measure_limits(tools, quick)

    # Workload by workload, every system in turn (one process each): the numbers a ratio divides
    # are measured minutes apart at most, so a shared machine's drift over the run (seen here:
    # 25% between runs) moves both sides instead of one.
    results = {w.id: {s: {} for s in systems} for w in ws}
    make = {"engine": engine_task, "torch": torch_task, "ort": ort_task}
    for t in threads:
        for w in ws:
            log(f"{w.id}, {t} thread(s): {', '.join(SYSTEM_TITLES[s] for s in systems)}")
            for system in systems:
                dump = RUN / f"{w.id}-{system}-t{t}.out" if t == threads[0] else None
                task = make[system](w, infos[w.model], prepared[w.id], dump)
                out = run_system(system, t, [task], tools) if task is not None else {}
                r = out.get(w.id) or {"error": prepared[w.id].get("onnx_error", "not run")}
                results[w.id][system][str(t)] = dict(summarize(r, items_per_run(w)),
                                                     **{k: v for k, v in r.items() if k not in ("samples_s", "name")})

    rows = []
    for w in ws:
        info, p = infos[w.model], prepared[w.id]
        parity = {}
        ref = RUN / f"{w.id}-torch-t{threads[0]}.out"
        for s in systems:
            if s != "torch":
                parity[s] = max_diff(RUN / f"{w.id}-{s}-t{threads[0]}.out", ref)
        rows.append({"workload": asdict(w), "unit": w.unit, "model": w.model, "items_per_run": items_per_run(w),
                     "length": p.get("length"), "lengths": p.get("lengths_list"), "onnx_error": p.get("onnx_error"),
                     "systems": results[w.id], "parity": parity,
                     "bound": {str(t): bound(w, info, p, limits, t) for t in threads}})
    jobs_after = training_jobs()
    meta.update(loadavg_after=loadavg(), training_jobs_after=jobs_after, prepare_s=round(t_prep, 1),
                total_s=round(time.time() - T0, 1),
                shared_cpu=bool(jobs_before or jobs_after))
    return {"meta": meta, "limits": limits, "models": {k: asdict(v) for k, v in infos.items()}, "rows": rows}


# -- rendering -----------------------------------------------------------------------------------------
def fmt_rate(x: float) -> str:
    if x >= 1e5:
        return f"{x / 1e3:,.0f}k"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def cell(r: dict) -> str:
    if not r or "rate" not in r:
        err = (r or {}).get("error", "not run")
        return "—" if err == "not run" else "error¹"
    return f"{fmt_rate(r['rate'])} ±{100 * r['spread']:.0f}%"


def ratio(a: dict, b: dict) -> str:
    if not a or not b or "rate" not in a or "rate" not in b:
        return "—"
    return f"**{a['rate'] / b['rate']:.2f}×**"


def fmt_diff(d) -> str:
    if d is None:
        return "—"
    if "error" in d:
        return "shape?"
    return f"{d['max_abs']:.1e}"


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def render(res: dict) -> str:
    m, lim = res["meta"], res["limits"]
    mach = m["machine"]
    threads = m["threads"]
    lines = []
    dirty = " (+ uncommitted changes in the working tree)" if m.get("dirty") else ""
    lines.append(f"Measured {m['date']} at commit `{m['commit']}`{dirty} on {mach.get('cpu')} "
                 f"({mach.get('cpu_family_model')}, {mach.get('simd')}), {mach.get('cores')} cores, "
                 f"{mach.get('memory_gib')} GiB; `{m['command']}`"
                 f"{' (quick mode)' if m.get('quick') else ''}; {m.get('total_s', 0):.0f} s in all.")
    if m.get("shared_cpu"):
        n = max(len(m.get("training_jobs_before", [])), len(m.get("training_jobs_after", [])))
        lines.append("")
        lines.append(f"> **Warning: measured while training jobs shared the CPU** ({n} `longvq_ref.train` "
                     f"process(es) running; load average {m.get('loadavg_before', 0):.1f} before the run). "
                     "Every number below is low and noisy; rerun on an idle machine.")
    lines.append("")
    lim_txt = "; ".join(f"{t} thread{'s' if t > 1 else ''}: read {lim['stream'][str(t)]['best_gbs']:.1f} GB/s, "
                        f"FMA peak {lim['fma'][str(t)]['gflops']:.0f} GFLOP/s" for t in threads if str(t) in lim["stream"])
    lines.append(f"Physical limits measured in this run: {lim_txt}.")
    lines.append("")
    syss = m["systems"]
    peers = [s for s in syss if s != "engine"]
    head = (["workload", "model", "thr"] + [SYSTEM_TITLES[s] for s in syss]
            + [f"engine ÷ {SYSTEM_TITLES[s]}" for s in peers if "engine" in syss]
            + ["bound", "engine % of bound", "max abs diff vs ref"])
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|")
    notes = []
    by_id = {r["workload"]["id"]: r for r in res["rows"]}
    for r in res["rows"]:
        w = r["workload"]
        for i, t in enumerate(threads):
            st = {s: r["systems"].get(s, {}).get(str(t), {}) for s in syss}
            b = r["bound"].get(str(t))
            title = f"{w['title']} ({r['unit']})" if i == 0 else ""
            if w["kind"] == "classify" and i == 0 and r.get("length"):
                title = f"{w['title']} × ≤{r['length']} ({r['unit']})"
            row = [title, r["model"] if i == 0 else "", str(t)] + [cell(st[s]) for s in syss]
            if "engine" in syss:
                row += [ratio(st["engine"], st[s]) for s in peers]
            if b:
                lim_by = "mem" if b["limited_by"] == "memory" else "FMA"
                row.append(f"{fmt_rate(b['rate'])} ({lim_by})")
                e = st.get("engine", {})
                row.append(f"{100 * e['rate'] / b['rate']:.0f}%" if "rate" in e else "—")
            else:
                row += ["—", "—"]
            if i == 0:
                par = r.get("parity", {})
                row.append("; ".join(f"{'eng' if s == 'engine' else 'ORT'} {fmt_diff(par.get(s))}"
                                     for s in syss if s != "torch"))
            else:
                row.append("")
            lines.append("| " + " | ".join(row) + " |")
            for s in syss:
                if "error" in st[s] and st[s]["error"] != "not run":
                    notes.append(f"{w['id']} · {SYSTEM_TITLES[s]} · {t} thr: {st[s]['error'][:300]}")
    # Decode cost at depth 65,536 vs 512 (time per token; 1.00 = flat).
    deep, shallow = by_id.get("decode-b1-austen-d65536"), by_id.get("decode-b1-austen")
    if deep and shallow:
        for i, t in enumerate(threads):
            row = ["decode cost @65536 ÷ @512 (time/token)" if i == 0 else "", deep["model"] if i == 0 else "", str(t)]
            for s in syss:
                a, b2 = deep["systems"].get(s, {}).get(str(t), {}), shallow["systems"].get(s, {}).get(str(t), {})
                row.append(f"{b2['rate'] / a['rate']:.2f}×" if "rate" in a and "rate" in b2 else "—")
            row += ["" for _ in peers if "engine" in syss] + ["1.00× (state size is fixed)" if i == 0 else "", "", ""]
            lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append("Cells: median rate over the timed repetitions ±half their range (as % of the median). "
                 "Ratios: engine rate ÷ peer rate at the same thread count (**> 1 = engine faster**). "
                 "Bound: the rate if the workload ran at the measured read bandwidth (bytes ÷ GB/s) or FMA peak "
                 "(FLOPs ÷ GFLOP/s), whichever is slower; `mem`/`FMA` says which. Max abs diff: largest |logit "
                 "difference| from the PyTorch reference on the same inputs (1-thread runs).")
    lines.append("")
    lines.append("| model | parameters | weight bytes (f32) | state / sequence | FLOPs / token (decode; whole-seq) | note |")
    lines.append("|---|---:|---:|---:|---:|---|")
    for k, info in res["models"].items():
        fl = info["flops"]
        whole = fl["bidirectional"] if info["config"].get("bidirectional") else fl["causal"]
        dec = f"{fl['decode'] / 1e6:.2f} M; " if info["config"].get("task") == "lm" else ""
        lines.append(f"| {k} | {info['params']:,} | {human_bytes(info['weight_bytes'])} | "
                     f"{human_bytes(info['state_bytes']) if info['state_bytes'] else '—'} | {dec}{whole / 1e6:.2f} M | "
                     f"{info['note'] or '`' + os.path.relpath(info['dir'], REPO) + '`'} |")
    onnx_notes = sorted({f"{r['workload']['id']}: {r['onnx_error']}" for r in res["rows"] if r.get("onnx_error")})
    if onnx_notes or notes:
        lines.append("")
        for i, n in enumerate(onnx_notes + notes):
            lines.append(f"{'¹ ' if i == 0 else ''}{n}  ")
    return "\n".join(lines) + "\n"


DOC_HEAD = """# CPU benchmarks: the engine against PyTorch, ONNX Runtime and the machine's limits

`tools/bench/compare.py` runs the same model on the same inputs through three systems and prints
one table; this page holds the last full run (it rewrites everything below "Last full run").

    /usr/bin/python3 tools/bench/compare.py            # everything (~15 min), rewrites this page
    /usr/bin/python3 tools/bench/compare.py --quick    # fewer steps and repetitions (~3 min)
    /usr/bin/python3 tools/bench/compare.py --only 'decode-*,classify-listops'   # --list names them
    /usr/bin/python3 tools/bench/compare.py --show     # reprint the last table, measure nothing
    /usr/bin/python3 tools/bench/compare.py --threads 1 --systems engine,torch   # a subset

Every run writes `data/bench/results.json` (all samples, errors, versions; `--show` reads it);
only a full run (no `--quick`, `--only`, `--threads` or `--systems`) rewrites this page. The
first run builds what it needs (`build-bench/`: the engine driver and `limits.c`;
`tools/bench/node_modules` via `ONNXRUNTIME_NODE_INSTALL=skip npm install`), generates the random
100 M-parameter model (`data/bench/random-100m`, ~20 s) and caches inputs, decoding states and
ONNX exports under `data/bench/cache/` (a few minutes once; about 1.5 GB).

Speed checks are benchmarks, never timed tests: no test in the repo fails because something is slow.

## The systems

| column | what runs | threads |
|---|---|---|
| engine | the C++ engine through `longvq.h` (`tools/bench/engine_bench.cpp`, built against the working tree in `build-bench/`): `Session::decode`, `Session::prefill` (chunks of 512), `Session::forward` | `ModelOptions::threads` 1 and 2 |
| PyTorch eager | the reference `tools/longvq_ref` in float32: `model.step` loop, `model.prefill`, `model(inputs, lengths)` | `torch.set_num_threads(t)` in a subprocess started with `OMP_NUM_THREADS`/`OPENBLAS_NUM_THREADS` = t |
| ONNX Runtime | `onnxruntime-node` 1.30.0 CPU (`tools/bench/ort_run.mjs`) on `torch.onnx.export` (opset 14) of the reference: the decode step with the state as explicit inputs/outputs, and the whole-sequence forward (LM logits for prefill, class logits for classification) | `intraOpNumThreads` 1 and 2, sequential |

Shared inputs: decode contexts and next tokens are held-out Austen text (`<bos>` then bytes; one
stretch per sequence); the decoding state at the stated depth is computed once by the reference
(`State.save`) and loaded by all three systems, so they decode from the same state; prefill uses
4,096 bytes of the same text; classification uses the first 16 test examples of each data set at
their real lengths (ListOps: 500-2,000 tokens, padded to the longest; Fashion-MNIST: 784 pixels).
Cells run workload by workload, the three systems in turn, each cell in a fresh process: 2
untimed warmups (1 for the 100 M prefill) then up to 7 repetitions (fewer for slow cells, at
least 2-3); decode repetitions are 64 steps (16 on the 100 M model) from the same starting
state. A ratio's two numbers are thus measured a minute or so apart, not a whole run apart.

ONNX notes. ONNX has no FFT at opset 14 (and torch 1.13 exports no `fft_rfft` at all), so the
exported whole-sequence forward computes the EMA as a direct depthwise convolution with the
kernel folded to a constant (`tools/bench/onnx_export.py`): same result to float32 rounding,
O(n²·d) instead of O(n log n·d) work. The decode step needs no convolution and exports as is.
There is no stateful chunked prefill export: the ONNX Runtime prefill column runs the
whole-sequence causal forward over the 4,096 tokens, which computes the same logits.

## Columns

- **rate**: tokens/s (decode: batch × steps ÷ time; prefill: prompt tokens ÷ time) or sequences/s
  (classification), median over repetitions, ± half the range of the repetitions.
- **engine ÷ peer**: engine rate ÷ peer rate at the same thread count; **> 1 means the engine is faster**.
- **bound**: the best rate this machine allows, measured in the same run. Memory: bytes ÷ read
  bandwidth (`limits.c stream`: sums a 1 GiB array, best of the repetitions), where bytes per decode
  step = the stored weight bytes (4 per f32 parameter, 2 per bf16 one; every weight read once per
  step, shared by the batch) + batch × state
  bytes per sequence (the ring, the per-code sums U and counts N, the EMA state); prefill and
  classification read the weights at least once. Compute: model FLOPs ÷ FMA peak (`limits.c fma`:
  16 independent AVX-512 FMA chains per thread), with model FLOPs per token = the projections and
  FFN (2 per multiply-add), the EMA recurrence, quantization (K·C and Q·C) and the attention's
  weighted sums over window keys + S codes (classification: every padded position). `mem`/`FMA`
  says which floor is higher. **engine % of bound** = engine rate ÷ bound.
- **max abs diff vs ref**: the largest absolute difference of the logits (every decode step, every
  prefill position, class logits) from the PyTorch reference on identical inputs, 1-thread runs.
- **decode cost @65536 ÷ @512**: time per decoded token at context depth 65,536 divided by the same
  at depth 512 (batch 1, austen-lm). The state has a fixed size, so 1.00× is the expectation.

## Last full run

"""


def write_doc(res: dict) -> None:
    """Rewrites everything below "## Last full run"; the page's text above it (its targets
    section is written by hand from the table) is kept, or DOC_HEAD for a new page."""
    marker = "## Last full run\n"
    old = DOC.read_text() if DOC.is_file() else ""
    head = old[:old.index(marker) + len(marker)] if marker in old else DOC_HEAD.rstrip("\n") + "\n"
    DOC.write_text(head + "\n" + render(res))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--torch-worker"]:
        return torch_worker(argv[1])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer steps and repetitions; skips the 100M prefill")
    ap.add_argument("--only", help="comma-separated workload ids or globs (see --list)")
    ap.add_argument("--show", action="store_true", help="reprint the last table from data/bench/results.json")
    ap.add_argument("--list", action="store_true", help="list the workloads and exit")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="subset of engine,torch,ort")
    ap.add_argument("--threads", default=",".join(map(str, THREADS)), help="thread counts (default 1,2)")
    ap.add_argument("--json", default=str(RESULTS), help="results file to write (or read with --show)")
    args = ap.parse_args(argv)
    args.argv = argv
    if args.list:
        for w in workloads(args.quick):
            print(f"{w.id:26s} {w.title:30s} {w.model:17s}{'' if w.quick else '  (full runs only)'}")
        return 0
    if args.show:
        path = Path(args.json)
        if not path.is_file():
            print(f"no results at {path}: run tools/bench/compare.py first", file=sys.stderr)
            return 1
        print(render(json.loads(path.read_text())), end="")
        return 0
    res = run_all(args)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(res, indent=1))
    table = render(res)
    print(table, end="")
    full = not (args.quick or args.only or args.threads != ",".join(map(str, THREADS))
                or args.systems != ",".join(SYSTEMS))
    if full:
        write_doc(res)
        shutil.copy(args.json, WORK / "results-full.json")
        log(f"wrote {DOC.relative_to(REPO)} and {Path(args.json).relative_to(REPO)}")
    else:
        log(f"wrote {Path(args.json)} (partial run: docs/benchmarks.md unchanged)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
