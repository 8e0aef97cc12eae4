#!/usr/bin/python3
"""longvq CPU comparison harness: the engine against its peers and the machine's physical limits.

  /usr/bin/python3 tools/bench/compare.py            full run (~25 min): writes docs/benchmarks.md
  /usr/bin/python3 tools/bench/compare.py --quick    small run (~5 min once caches exist)
  /usr/bin/python3 tools/bench/compare.py --only 'decode-*'   some workloads (--list names them)
  /usr/bin/python3 tools/bench/compare.py --show     reprint the last table, measuring nothing

Every workload runs the same model on the same inputs (files written once here) through
  engine       the C++ engine via tools/bench/engine_bench.cpp (built here in build-bench/)
  PyTorch ref  the reference tools/longvq_ref in eager mode, float32, in a subprocess per thread count
  PyTorch fast tools/bench/torch_fast.py: inference written for speed in plain PyTorch (eager)
  TorchScript  the same module through torch.jit.script
  ORT          ONNX Runtime CPU (npm onnxruntime-node, tools/bench/ort_run.mjs) on an opset-14 export
at 1 and 2 threads, each with warmup runs and repetitions (median and spread). The fast peers are
checked against the reference's logits before they are timed (a peer that disagrees is an
error, not a number). Ratios are given against the reference, ORT and the strongest peer of
the row. The peer processes run with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset (OpenBLAS picks
its kernels for this CPU; the engine's processes keep the environment). The same run measures
the read bandwidth of L2, the last-level cache and DRAM and the FMA peak (tools/bench/limits.c),
from which it derives the fastest each workload could possibly run on this machine. Results go to
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
SYSTEMS = ("engine", "torch", "torch-fast", "torchscript", "ort")
SYSTEM_TITLES = {"engine": "engine", "torch": "PyTorch ref", "torch-fast": "PyTorch fast",
                 "torchscript": "TorchScript fast", "ort": "ONNX Runtime"}
SHORT = {"engine": "eng", "torch": "ref", "torch-fast": "fast", "torchscript": "TS", "ort": "ORT"}
FAST_PEERS = ("torch-fast", "torchscript")
# Set on these machines as a guard against old OpenBLAS bugs; they pin OpenBLAS to Haswell
# kernels. Unset for the peers' processes only (never in tests or CI).
BLAS_GUARDS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# Agreement of a fast peer with the reference: max |Δ logit| <= CHECK_ABS + CHECK_REL · max |ref logit|.
CHECK_ABS, CHECK_REL = 1e-4, 1e-5
CHECK_STEPS = 256  # decode steps of the agreement check (64 on models with > 64 MiB of weights)
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
        # what a server runs with many clients (issue 19's batched-decode targets)
        Workload("decode-b16-austen", "decode b16 @512", "austen-lm", "decode", 16, 512, s(64, 16), budget_s=s(3, 1)),
        Workload("decode-b64-austen", "decode b64 @512", "austen-lm", "decode", 64, 512, s(32, 8), budget_s=s(4, 1)),
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


def fast_task(w, info, p, dump, ref_dump=None, quick=False):
    t = torch_task(w, info, p, dump)
    t["check_abs"], t["check_rel"] = CHECK_ABS, CHECK_REL
    if w.kind == "decode":
        t["check_steps"] = CHECK_STEPS if info.weight_bytes <= 64 << 20 else (32 if quick else 64)
    elif ref_dump is not None:
        t["ref_dump"] = str(ref_dump)  # the reference's logits of this run, when it ran first
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


def peer_env(threads: int) -> dict:
    """The peers' environment: thread counts as above, OpenBLAS free to pick its kernels."""
    env = thread_env(threads)
    for k in BLAS_GUARDS:
        env.pop(k, None)
    return env


def blas_info() -> dict:
    """Which BLAS this process loaded and which kernels it runs (threadpoolctl, else OpenBLAS's
    own openblas_get_config / openblas_get_corename through ctypes)."""
    import ctypes
    libs = sorted({line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines()
                   if "blas" in line.lower() and "/" in line})
    out = {"libs": libs, "env": {k: os.environ.get(k) for k in BLAS_GUARDS}}
    try:
        from threadpoolctl import threadpool_info
        out["threadpoolctl"] = [{k: v for k, v in i.items() if k in ("internal_api", "version", "architecture",
                                                                      "num_threads", "filepath")}
                                for i in threadpool_info()]
    except Exception:  # noqa: BLE001 - not installed
        pass
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("openblas_get_config", "openblas_get_corename"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                out[name[len("openblas_get_"):]] = fn().decode()
        if "corename" in out:
            break
    return out


def torch_worker(spec_path: str) -> int:
    """Subprocess side of the PyTorch peer: runs the tasks of SPEC at its thread count."""
    import numpy as np
    import torch
    from longvq_ref.export import load_model
    from longvq_ref.state import State
    spec = json.loads(Path(spec_path).read_text())
    threads = spec["threads"]
    variant = spec.get("variant", "ref")  # ref | fast | script
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    torch.zeros(8, 8) @ torch.zeros(8, 8)  # loads the BLAS
    out = {"threads": threads, "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
           "variant": variant, "blas": blas_info(), "tasks": []}
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
            if variant != "ref":
                once, check = fast_cells(task, model, variant, tensor, dumped)
                res["check"] = check
                if not check["ok"]:
                    res["error"] = (f"disagrees with the reference: max |Δ logit| {check['max_abs']:.2e} > "
                                    f"{check['tol']:.1e} ({check['what']}); not timed")
                    out["tasks"].append(res)
                    continue
            elif task["kind"] == "decode":
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


def fast_cells(task, model, variant, tensor, dumped):
    """The timed function of a fast peer (eager or TorchScript) for this task, after checking its
    logits against the reference's on the same inputs: (once, check)."""
    import numpy as np
    import torch
    import torch_fast
    from longvq_ref.state import State
    t0 = time.perf_counter()
    runner = torch_fast.Runner(model, script=(variant == "script"))
    with torch.inference_mode():
        if task["kind"] == "decode":
            tokens = tensor(task["tokens"])  # [steps, batch]
            base = State.load(task["state_file"], model.cfg, dtype=torch.float32)
            runner.load_state(base.clone())
            n_check = task.get("check_steps", CHECK_STEPS)
            toks = tokens[torch.arange(n_check) % tokens.shape[0]]
            st = base.clone()
            ref = torch.stack([model.step(toks[i], st) for i in range(n_check)])
            runner.reset_state()
            got = torch.stack([runner.step(toks[i]) for i in range(n_check)])
            what = f"{n_check} decode steps × batch {tokens.shape[1]}"

            def once(record):
                runner.reset_state()
                t1 = time.perf_counter()
                for i in range(tokens.shape[0]):
                    logits = runner.step(tokens[i])
                    if record:
                        dumped.append(logits.numpy().copy())
                return time.perf_counter() - t1
        else:
            if task["kind"] == "prefill":
                x, lengths = tensor(task["tokens"]), None
                run = lambda: runner.prefill(x)[0]  # noqa: E731 - logits and the decoding state
                ref_run = lambda: model.prefill(x)[0]  # noqa: E731
            else:
                x, lengths = tensor(task["inputs"]), tensor(task["lengths"])
                run = lambda: runner.classify(x, lengths)  # noqa: E731
                ref_run = lambda: model(x, lengths, block_len=task.get("block_len"))  # noqa: E731
            got = run()
            ref = None
            rd = Path(task["ref_dump"]) if task.get("ref_dump") else None
            if rd is not None and rd.is_file() and rd.stat().st_size == 4 * got.numel():
                ref = torch.from_numpy(np.fromfile(rd, np.float32)).view_as(got)
                what = f"{task['kind']} logits {list(got.shape)} vs this run's reference cell"
            else:
                ref = ref_run()
                what = f"{task['kind']} logits {list(got.shape)}"

            def once(record):
                t1 = time.perf_counter()
                logits = run()
                s = time.perf_counter() - t1
                if record:
                    dumped.append(logits.numpy().copy())
                return s
    diff = float((got - ref).abs().max())
    ref_max = float(ref.abs().max())
    tol = task.get("check_abs", CHECK_ABS) + task.get("check_rel", CHECK_REL) * ref_max
    ok = bool(diff <= tol) and bool(torch.isfinite(got).all())
    return once, {"ok": ok, "max_abs": diff, "ref_max_abs": ref_max, "tol": tol, "what": what,
                  "s": round(time.perf_counter() - t0, 2)}


def run_system(system: str, threads: int, tasks: list, tools: dict) -> dict:
    """All tasks of one system at one thread count, in one process: {name: result}."""
    if not tasks:
        return {}
    spec = {"threads": threads, "tasks": tasks}
    path = RUN / f"spec-{system}-t{threads}.json"
    env = thread_env(threads) if system == "engine" else peer_env(threads)
    if system in ("torch", "torch-fast", "torchscript"):
        spec["variant"] = {"torch": "ref", "torch-fast": "fast", "torchscript": "script"}[system]
        out = run_json([sys.executable, str(Path(__file__).resolve()), "--torch-worker"], spec, path, env)
    elif system == "engine":
        if "engine" not in tools:
            return {t["name"]: {"error": tools.get("engine_error", "engine driver not built")} for t in tasks}
        out = run_json([tools["engine"]], spec, path, env)
    else:
        if "ort" not in tools:
            return {t["name"]: {"error": tools.get("ort_error", "onnxruntime-node missing")} for t in tasks}
        out = run_json(["node", str(HERE / "ort_run.mjs")], spec, path, env)
    if "error" in out and "tasks" not in out:
        return {t["name"]: {"error": out["error"]} for t in tasks}
    meta = {k: v for k, v in out.items() if k != "tasks"}
    return {r["name"]: dict(r, process=meta) for r in out["tasks"]}


# -- physical limits ---------------------------------------------------------------------------------
def measure_limits(tools: dict, quick: bool, threads=THREADS) -> dict:
    """Read bandwidth of L2, the last-level cache and DRAM, and the FMA peak, per thread count.
    `stream` (DRAM) is kept under its old name for older readers of results.json."""
    out = {"stream": {}, "fma": {}, "levels": {}, "caches": {}}
    for t in sorted(set(THREADS) | set(threads)):
        r = subprocess.run([tools["limits"], "levels", str(t), "3" if quick else "7"],
                           capture_output=True, text=True, env=thread_env(t))
        lv = {}
        for line in r.stdout.splitlines():
            j = json.loads(line)
            if j["test"] == "caches":
                out["caches"] = j
            elif j["level"] not in lv or j["best_gbs"] > lv[j["level"]]["best_gbs"]:
                lv[j["level"]] = j  # the best size and read pattern of this level
        out["levels"][str(t)] = lv
        out["stream"][str(t)] = lv["dram"]
        r = subprocess.run([tools["limits"], "fma", str(t)], capture_output=True, text=True, env=thread_env(t))
        out["fma"][str(t)] = json.loads(r.stdout)
        log(f"limits, {t} thread(s): read " + ", ".join(f"{k} {v['best_gbs']:.1f}" for k, v in lv.items())
            + f" GB/s; FMA {out['fma'][str(t)]['gflops']:.0f} GFLOP/s")
    return out


LEVEL_TITLES = {"l2": "L2", "llc": "LLC", "dram": "DRAM"}


def read_level(nbytes: int, limits: dict, threads: int) -> str:
    """The fastest memory level the bytes a step reads can live in: L2 when they fit in the
    threads' L2 caches together, the last-level cache when they fit in it, else DRAM."""
    c = limits.get("caches", {})
    lv = limits.get("levels", {}).get(str(threads), {})
    if "l2" in lv and nbytes <= threads * c.get("l2", 0):
        return "l2"
    if "llc" in lv and nbytes <= c.get("llc", 0):
        return "llc"
    return "dram"


def bound(w: Workload, info: ModelInfo, p: dict, limits: dict, threads: int) -> dict:
    """The fastest this workload could run here: bytes ÷ read bandwidth of the level they fit in
    vs FLOPs ÷ FMA peak."""
    # With t threads a workload can always run as fast as with fewer: each limit at t threads is
    # the best of its measurements at <= t threads (on a shared VM the 2-thread probes, timed to
    # the slower thread, can read lower than the 1-thread ones).
    fewer = [str(t) for t in range(1, threads + 1)]
    peak = max(limits["fma"][t]["gflops"] for t in fewer if t in limits["fma"]) * 1e9
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
    level = read_level(nbytes, limits, threads)
    if "levels" in limits:
        bw = max(limits["levels"][t][level]["best_gbs"] for t in fewer
                 if level in limits["levels"].get(t, {})) * 1e9
    else:
        bw = max(limits["stream"][t]["best_gbs"] for t in fewer if t in limits["stream"]) * 1e9
    t_bytes, t_flops = nbytes / bw, flops / peak
    t = max(t_bytes, t_flops)
    return {"bytes": nbytes, "flops": flops, "t_bytes_s": t_bytes, "t_flops_s": t_flops, "level": level,
            "read_gbs": bw / 1e9, "limited_by": "memory" if t_bytes >= t_flops else "FMA", "rate": items / t}


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
        ws = [w for w in ws if any(fnmatch.fnmatch(w.id, pat) or fnmatch.fnmatch(f"{w.kind}-{w.model}", pat)
                                   for pat in args.only.split(","))]  # an id, or kind-model ('decode-austen*')
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
    limits = measure_limits(tools, quick, threads)

    # Workload by workload, every system in turn (one process each): the numbers a ratio divides
    # are measured minutes apart at most, so a shared machine's drift over the run (seen here:
    # 25% between runs) moves both sides instead of one.
    results = {w.id: {s: {} for s in systems} for w in ws}
    make = {"engine": engine_task, "torch": torch_task, "ort": ort_task,
            "torch-fast": fast_task, "torchscript": fast_task}
    disagreed = set()  # (workload, system) whose check failed: not run at the other thread counts
    for t in threads:
        for w in ws:
            log(f"{w.id}, {t} thread(s): {', '.join(SYSTEM_TITLES[s] for s in systems)}")
            for system in systems:
                dump = RUN / f"{w.id}-{system}-t{t}.out" if t == threads[0] else None
                if system in FAST_PEERS:
                    ref_dump = RUN / f"{w.id}-torch-t{threads[0]}.out" if "torch" in systems else None
                    task = fast_task(w, infos[w.model], prepared[w.id], dump, ref_dump, quick)
                else:
                    task = make[system](w, infos[w.model], prepared[w.id], dump)
                if (w.id, system) in disagreed:
                    out = {w.id: {"error": f"disagreed with the reference at {threads[0]} thread(s); not run"}}
                else:
                    out = run_system(system, t, [task], tools) if task is not None else {}
                r = out.get(w.id) or {"error": prepared[w.id].get("onnx_error", "not run")}
                if "check" in r:
                    c = r["check"]
                    log(f"  {SYSTEM_TITLES[system]}: agreement {'ok' if c['ok'] else 'FAILED'}, max |Δ logit| "
                        f"{c['max_abs']:.2e} (tolerance {c['tol']:.1e}; {c['what']})")
                    if not c["ok"]:
                        disagreed.add((w.id, system))
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
                chk = results[w.id][s].get(str(threads[0]), {}).get("check")
                if chk is not None and parity[s] is not None:
                    parity[s]["check"] = chk
        rows.append({"workload": asdict(w), "unit": w.unit, "model": w.model, "items_per_run": items_per_run(w),
                     "length": p.get("length"), "lengths": p.get("lengths_list"), "onnx_error": p.get("onnx_error"),
                     "systems": results[w.id], "parity": parity,
                     "bound": {str(t): bound(w, info, p, limits, t) for t in threads}})
    peer_blas = None
    for w in ws:
        for s in ("torch", "torch-fast", "torchscript"):
            for r in results[w.id].get(s, {}).values():
                peer_blas = peer_blas or r.get("process", {}).get("blas")
    meta["peer_blas"] = peer_blas
    meta["peer_env_unset"] = {k: os.environ[k] for k in BLAS_GUARDS if k in os.environ}
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
    if "levels" in lim:
        c = lim.get("caches", {})
        sizes = {"l2": f"L2 ({human_bytes(c.get('l2', 0))}/core)", "llc": f"LLC ({human_bytes(c.get('llc', 0))})",
                 "dram": "DRAM"}
        lim_txt = "; ".join(f"{t} thread{'s' if t > 1 else ''}: read "
                            + ", ".join(f"{sizes[k]} {v['best_gbs']:.1f}" for k, v in lim["levels"][str(t)].items())
                            + f" GB/s, FMA peak {lim['fma'][str(t)]['gflops']:.0f} GFLOP/s"
                            for t in threads if str(t) in lim["levels"])
    else:
        lim_txt = "; ".join(f"{t} thread{'s' if t > 1 else ''}: read {lim['stream'][str(t)]['best_gbs']:.1f} GB/s, "
                            f"FMA peak {lim['fma'][str(t)]['gflops']:.0f} GFLOP/s" for t in threads if str(t) in lim["stream"])
    lines.append(f"Physical limits measured in this run (best of the repetitions): {lim_txt}.")
    pb = m.get("peer_blas")
    if pb:
        unset = ", ".join(f"{k}={v}" for k, v in (m.get("peer_env_unset") or {}).items())
        lines.append("")
        lines.append(f"PyTorch peers' BLAS: {pb.get('config') or ', '.join(pb.get('libs', []))}; kernels for core "
                     f"**{pb.get('corename', '?')}**"
                     + (f" (this shell's {unset} unset for the peers' processes)" if unset else "") + ".")
    lines.append("")
    syss = m["systems"]
    peers = [s for s in syss if s != "engine"]
    kept = [s for s in ("torch", "ort") if s in peers]  # ratio columns kept from earlier tables
    head = (["workload", "model", "thr"] + [SYSTEM_TITLES[s] for s in syss]
            + ([f"engine ÷ {SYSTEM_TITLES[s]}" for s in kept] + ["engine ÷ strongest peer"] if "engine" in syss else [])
            + ["bound (level)", "engine % of bound", "max abs diff vs ref"])
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
                row += [ratio(st["engine"], st[s]) for s in kept]
                timed = [s for s in peers if "rate" in st[s]]
                best = max(timed, key=lambda s: st[s]["rate"]) if timed else None
                row.append(f"{ratio(st['engine'], st[best])} ({SYSTEM_TITLES[best]})" if best else "—")
            if b:
                lim_by = (LEVEL_TITLES.get(b.get("level"), "mem") if b["limited_by"] == "memory" else "FMA")
                row.append(f"{fmt_rate(b['rate'])} ({lim_by})")
                e = st.get("engine", {})
                row.append(f"{100 * e['rate'] / b['rate']:.0f}%" if "rate" in e else "—")
            else:
                row += ["—", "—"]
            if i == 0:
                par = r.get("parity", {})
                row.append("; ".join(f"{SHORT[s]} {fmt_diff(par.get(s))}" for s in syss if s != "torch"))
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
            row += (["" for _ in kept] + [""] if "engine" in syss else []) + [
                "1.00× (state size is fixed)" if i == 0 else "", "", ""]
            lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append("Cells: median rate over the timed repetitions ±half their range (as % of the median). "
                 "Ratios: engine rate ÷ peer rate at the same thread count (**> 1 = engine faster**); the strongest "
                 "peer is the fastest of the row's peers at that thread count. "
                 "Bound: the rate if the workload ran at the read bandwidth of the memory level its bytes fit in "
                 "(L2, LLC or DRAM; bytes ÷ GB/s) or at the FMA peak (FLOPs ÷ GFLOP/s), whichever is slower; the "
                 "level or `FMA` says which; at 2 threads each limit is the better of its 1- and 2-thread "
                 "measurements. Max abs diff: largest |logit difference| from the PyTorch reference on "
                 "the same inputs (1-thread runs); the fast PyTorch peers are also checked before timing (max |Δ| ≤ "
                 f"{CHECK_ABS:g} + {CHECK_REL:g} × max |reference logit|, over {CHECK_STEPS} decode steps, 64 on the "
                 "100 M model, or the whole prefill / classification batch) and shown as an error when they fail.")
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

`tools/bench/compare.py` runs the same model on the same inputs through the engine and four peers
(the PyTorch reference, a fast PyTorch written for speed, its TorchScript, ONNX Runtime) and prints
one table; this page holds the last full run (it rewrites everything below "Last full run").
Every number on this page belongs to the machine (CPU model) and the single run it names: ratios
move with the CPU, its cache sizes, the BLAS kernels the peers get and the load on a shared VM,
so no ratio measured on one machine is this project's speed on another.

    /usr/bin/python3 tools/bench/compare.py            # everything (~25 min), rewrites this page
    /usr/bin/python3 tools/bench/compare.py --quick    # fewer steps and repetitions (~5 min)
    /usr/bin/python3 tools/bench/compare.py --only 'decode-*,classify-listops'   # --list names them
    /usr/bin/python3 tools/bench/compare.py --show     # reprint the last table, measure nothing
    /usr/bin/python3 tools/bench/compare.py --threads 1 --systems engine,torch-fast,torchscript   # a subset

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
| PyTorch ref | the reference `tools/longvq_ref` in float32: `model.step` loop, `model.prefill`, `model(inputs, lengths)`. Written to be read, not to be fast (per-step sigmoids of the EMA parameters, several small ops per formula) | `torch.set_num_threads(t)` in a subprocess started with `OMP_NUM_THREADS`/`OPENBLAS_NUM_THREADS` = t |
| PyTorch fast | `tools/bench/torch_fast.py`, eager: the same math written for speed in plain float32 PyTorch (details below); decode on preallocated state buffers updated in place, prefill = whole-prompt causal forward plus the decoding state at its end, classification = masked bidirectional forward | as PyTorch ref |
| TorchScript fast | the same module through `torch.jit.script` (torch 1.13), profiling executor, warmed up before timing | as PyTorch ref |
| ONNX Runtime | `onnxruntime-node` 1.30.0 CPU (`tools/bench/ort_run.mjs`) on `torch.onnx.export` (opset 14) of the reference: the decode step with the state as explicit inputs/outputs, and the whole-sequence forward (LM logits for prefill, class logits for classification) | `intraOpNumThreads` 1 and 2, sequential |

The fast PyTorch peer (what makes it fast). Decode is ~35 tensor ops per layer with no Python
loop over tokens, codes or ring slots; at batch 1 every projection is a matrix-vector product
(`addmv`/`mv`: torch 1.13's `addmm` with a single row streamed the 100 M model's weights ~3×
slower on the family-26 EPYC, 6 against 19 GB/s); the EMA recurrence as two in-place ops on coefficients
computed once at load (q = 1 − σ(δ)σ(α), p·β, γ/√N); one `addmm` gives both the code scores
Q·C/√e and the quantization distances ||C||² − 2K·C (qk scale/offset, 1/√e and ||C||² folded
into one [e, 2S] matrix and bias); the attention over the current key, the ring and the codebook
memory is one `gather`, one `exp` and one `bmm` against a per-layer buffer of [value | count]
rows (ring values, per-code sums U and counts N), which yields numerator and denominator
together; the ring's relative bias per position is a precomputed table row; `h_proj`'s bias is
folded into `mx_proj`'s; the residual gate is one `lerp`; the state update is one `index_add_`
and two copies, with no branch (an empty ring slot is a zero row). Whole sequences: one
`rfft`/`irfft` pair per layer with the EMA kernel's FFT cached per length (a bidirectional
layer's backward direction folds into the same product as a conjugate), blocked attention
(neighbouring blocks scored key by key with a precomputed bias/mask matrix, older and newer
keys through per-code means, one `softmax` and one `matmul` per block). It requires equal
positions across a decoding batch and quantized window keys (true of every workload here).
Before any timing, each fast-peer process checks its logits against the reference's on the
same inputs: 256 decode steps from the workload's state (64 on the 100 M model, 32 in
`--quick`; the step tokens repeated), or the whole prefill / classification batch (the
reference cell's logits of the same run, else the reference run in the worker). It passes when
max |Δ logit| ≤ 1e-4 + 1e-5 × max |reference logit|; a peer that fails is shown as an error
with its difference and is not timed (nor run at the other thread counts). Agreement seen so
far: `austen-lm` 1–2e-5 (decode b1/b8, f32 and bf16 matrices; prefill), classifiers 2–8e-6,
against tolerances of 2–3e-4.

BLAS. These machines' environment may set `OPENBLAS_CORETYPE` and `OPENBLAS_L2_SIZE` (a guard
against old OpenBLAS bugs; here `OPENBLAS_CORETYPE=Haswell`), which pins Debian's OpenBLAS
0.3.21 (DYNAMIC_ARCH) to its AVX2 Haswell kernels. The harness unsets both in the peers'
processes only (PyTorch ref, PyTorch fast, TorchScript, ONNX Runtime; the engine's processes,
the tests and CI keep the environment), and each PyTorch worker reports the BLAS it loaded and
the core type OpenBLAS then picked (`openblas_get_config` / `openblas_get_corename` through
ctypes, or `threadpoolctl` when installed); the table's header prints it. On the AMD EPYC
VM (family 26 model 2, AVX-512 with BF16) this harness change was made on, the peers then run
OpenBLAS's `Cooperlake` (AVX-512) kernels instead of `Haswell`.

Shared inputs: decode contexts and next tokens are held-out Austen text (`<bos>` then bytes; one
stretch per sequence); the decoding state at the stated depth is computed once by the reference
(`State.save`) and loaded by every system, so they decode from the same state; prefill uses
4,096 bytes of the same text; classification uses the first 16 test examples of each data set at
their real lengths (ListOps: 500-2,000 tokens, padded to the longest; Fashion-MNIST: 784 pixels).
Cells run workload by workload, the systems in turn, each cell in a fresh process: 2
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
- **engine ÷ peer**: engine rate ÷ peer rate at the same thread count; **> 1 means the engine is
  faster**. Columns for the PyTorch reference and ONNX Runtime, and **engine ÷ strongest peer**:
  against the fastest peer of that row and thread count (named in the cell). The strongest
  peer is the honest comparison; the reference column says how far the readable reference is
  from the engine, nothing about PyTorch's speed.
- **bound (level)**: the best rate this machine allows, measured in the same run. Memory: bytes
  ÷ the read bandwidth of the level the bytes fit in: L2 when they fit in the L2 caches of the
  threads used, the last-level cache when they fit in it, else DRAM (`limits.c levels`: each
  thread sums its own slice of a buffer of half its L2; of 3 × the threads' L2, a quarter and
  half of the LLC (the best of the three); or of max(1 GiB, 16 × LLC); with 8 independent
  AVX-512 accumulators, as one stream per thread and as 8 streams (the better counts), best of
  at least 20 repetitions; cache sizes from
  `/sys/devices/system/cpu/cpu0/cache/index*/size`; the header prints every level; at 2 threads
  each limit is the better of its 1- and 2-thread measurements, since a 2-thread run can always
  do what a 1-thread run does, and on a shared VM the 2-thread probes, timed to the slower
  thread, sometimes read lower), where bytes per decode
  step = the stored weight bytes (4 per f32 parameter, 2 per bf16 one; every weight read once per
  step, shared by the batch) + batch × state
  bytes per sequence (the ring, the per-code sums U and counts N, the EMA state); prefill and
  classification read the weights at least once. Compute: model FLOPs ÷ FMA peak (`limits.c fma`:
  16 independent AVX-512 FMA chains per thread), with model FLOPs per token = the projections and
  FFN (2 per multiply-add), the EMA recurrence, quantization (K·C and Q·C) and the attention's
  weighted sums over window keys + S codes (classification: every padded position). The level
  (`L2` / `LLC` / `DRAM`) or `FMA` says which floor is higher. **engine % of bound** = engine rate ÷ bound.
  Runs before issue 19 divided by the DRAM bandwidth only, measured by a loop that reduced its
  sum every 256 bytes: it read 12.4 GB/s on an Intel Xeon where the 100 M decode streamed
  13.9 GB/s, and cache-resident decodes showed up to 188% of "bound".
- **max abs diff vs ref**: the largest absolute difference of the logits (every decode step, every
  prefill position, class logits) from the PyTorch reference on identical inputs, 1-thread runs
  (`eng`, `fast`, `TS`, `ORT`).
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
    ap.add_argument("--only", help="comma-separated workload ids or globs (see --list), or kind-model globs "
                                   "such as 'decode-austen*'")
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
