"""Model files: models/<name>/{config.json, model.safetensors, README.md} (docs/file-formats.md).

  save_model / load_model   write and read a model directory (load validates every tensor);
  random_model              a model of any size with realistic magnitudes: codebooks are
                            k-means centroids of the model's own keys, so codes are used.

Command line (run from tools/ or with tools/ on PYTHONPATH):
  /usr/bin/python3 -m longvq_ref.export random --config CONFIG.json --out models/NAME [--seed 0]
  /usr/bin/python3 -m longvq_ref.export convert models/NAME --out models/NAME-bf16 --bf16
  /usr/bin/python3 -m longvq_ref.export convert models/NAME --out models/NAME-int8 --int8
  /usr/bin/python3 -m longvq_ref.export info models/NAME
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from . import safetensors_io
from .config import Config, ConfigError
from .ema import ema_conv
from .model import LongVQModel

MODEL_FORMAT = "longvq-model"


class ModelFileError(ValueError):
    """A model directory that cannot be loaded; the message names the file, tensor and fix."""


def expected_shapes(cfg: Config) -> dict:
    """name → shape of every tensor a model file of this config must hold (§6)."""
    return {name: tuple(t.shape) for name, t in LongVQModel(cfg).state_dict().items()}


def parameter_count(cfg: Config) -> int:
    return sum(math.prod(s) for n, s in expected_shapes(cfg).items() if "running_" not in n)


def save_model(model: LongVQModel, out_dir: str | Path, card: str | None = None, bf16: bool = False,
               int8: bool = False) -> Path:
    """Writes config.json, model.safetensors (fp32, or bf16 or int8 matrices) and README.md (the card)."""
    if bf16 and int8:
        raise ValueError("store the matrices as bf16 or as int8, not both")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg
    tensors = {n: t.detach().to(torch.float32).cpu().numpy() for n, t in model.state_dict().items()}
    # bf16 storage halves the bytes of the weight matrices (the ones the engine's linear and
    # embedding kernels stream); vectors, codebooks and EMA parameters stay fp32.
    # int8 (q8_0: blocks of 32 inputs with an f16 scale each) about quarters them.
    matrices = {n for n, a in tensors.items() if a.ndim == 2 and n.endswith(".weight")}
    meta = {"format": MODEL_FORMAT, "format_version": str(cfg.format_version)}
    if int8:
        meta["int8_matrices"] = f"q8_0, blocks of {safetensors_io.INT8_BLOCK}, F16 scales in NAME_scales"
    safetensors_io.write(out / "model.safetensors", tensors, meta, bf16=matrices if bf16 else set(),
                         int8=matrices if int8 else set())
    (out / "config.json").write_text(cfg.to_json())
    (out / "README.md").write_text(card if card is not None else default_card(cfg, out.name))
    return out


def load_model(model_dir: str | Path, dtype=torch.float64) -> LongVQModel:
    """Loads and validates a model directory; the model is in eval mode, in `dtype`."""
    d = Path(model_dir)
    if not (d / "config.json").is_file():
        raise ModelFileError(f"{d}: no config.json; pass a model directory made by the exporter")
    cfg = Config.load(d / "config.json")
    weights = d / "model.safetensors"
    if not weights.is_file():
        raise ModelFileError(f"{d}: no model.safetensors; the model directory is incomplete")
    arrays, _ = safetensors_io.read(weights)
    want = expected_shapes(cfg)
    _dequantize_int8(arrays, want, weights)
    missing = sorted(set(want) - set(arrays))
    unexpected = sorted(set(arrays) - set(want))
    if missing:
        raise ModelFileError(f"{weights}: tensor '{missing[0]}' (shape {list(want[missing[0]])}) is missing "
                             f"({len(missing)} missing in all); the file does not match config.json")
    if unexpected:
        raise ModelFileError(f"{weights}: unexpected tensor '{unexpected[0]}' for this config.json "
                             f"({len(unexpected)} in all); the file does not match config.json")
    for name, shape in want.items():
        if tuple(arrays[name].shape) != shape:
            raise ModelFileError(f"{weights}: tensor '{name}' has shape {list(arrays[name].shape)}, config.json "
                                 f"implies {list(shape)}; the file does not match config.json")
    model = LongVQModel(cfg)
    model.load_state_dict({n: torch.from_numpy(np.array(a, dtype=np.float32)) for n, a in arrays.items()})
    return model.to(dtype).eval()


def _dequantize_int8(arrays: dict, want: dict, weights: Path) -> None:
    """Replaces each I8 matrix and its NAME_scales by the f32 values they stand for (in place)."""
    suffix, block = safetensors_io.INT8_SCALES_SUFFIX, safetensors_io.INT8_BLOCK
    fix = "; re-export the model (python3 -m longvq_ref.export convert MODEL --out NEW --int8)"
    for name in sorted(n for n, a in arrays.items() if a.dtype == np.int8):
        q = arrays[name]
        if q.ndim != 2 or not name.endswith(".weight") or name not in want:
            raise ModelFileError(f"{weights}: tensor '{name}' is I8, but only the 2-D *.weight matrices may be "
                                 f"int8{fix}")
        need = [q.shape[0], -(-q.shape[1] // block)]
        scales = arrays.pop(name + suffix, None)
        if scales is None:
            raise ModelFileError(f"{weights}: tensor '{name}{suffix}' is missing: the I8 matrix '{name}' "
                                 f"{list(q.shape)} needs its scales, F16 {need}{fix}")
        if scales.dtype != np.float16 or list(scales.shape) != need:
            raise ModelFileError(f"{weights}: tensor '{name}{suffix}' ({scales.dtype} {list(scales.shape)}): the "
                                 f"scales of '{name}' must be F16 {need}{fix}")
        if not np.isfinite(scales).all():
            raise ModelFileError(f"{weights}: tensor '{name}{suffix}' holds NaN or infinity; the file is corrupt")
        arrays[name] = safetensors_io.dequantize_int8(q, scales)


def default_card(cfg: Config, name: str) -> str:
    a = cfg.attention
    return (f"# {name}\n\nA LongVQ model ({cfg.task}, {'bidirectional' if cfg.bidirectional else 'causal'}). "
            f"{parameter_count(cfg):,} parameters.\n\n"
            f"| d | h | e | N | f | layers | S | W | norm |\n|---|---|---|---|---|---|---|---|---|\n"
            f"| {cfg.d_model} | {cfg.hidden_dim} | {cfg.z_dim} | {cfg.ema_ndim} | {cfg.ffn_dim} | {cfg.n_layers} "
            f"| {a.codebook_size} | {a.window} | {cfg.norm}{' (prenorm)' if cfg.prenorm else ' (postnorm)'} |\n")


# -- random models ----------------------------------------------------------------------------
def _kmeans(points: torch.Tensor, k: int, gen: torch.Generator, iters: int = 15) -> torch.Tensor:
    """k-means++ seeding and Lloyd steps; empty clusters are re-seeded at the farthest point."""
    n = points.shape[0]
    centers = [points[torch.randint(n, (1,), generator=gen)].squeeze(0)]
    d2 = ((points - centers[0]) ** 2).sum(-1)
    for _ in range(1, k):
        idx = torch.multinomial(d2 + 1e-12, 1, generator=gen).item()
        centers.append(points[idx])
        d2 = torch.minimum(d2, ((points - points[idx]) ** 2).sum(-1))
    c = torch.stack(centers)
    for _ in range(iters):
        assign = torch.cdist(points, c).argmin(1)
        for s in range(k):
            members = points[assign == s]
            if len(members):
                c[s] = members.mean(0)
            else:
                far = torch.cdist(points, c).min(1).values.argmax()
                c[s] = points[far]
    return c


@torch.no_grad()
def random_model(cfg: Config, seed: int = 0, calib_batch: int = 4, calib_len: int = 256) -> LongVQModel:
    """A model with weights at trained-like scales and codebooks fitted to its own keys."""
    cfg.validate()
    gen = torch.Generator().manual_seed(seed)
    model = LongVQModel(cfg).double()

    def normal(t, std, mean=0.0):
        t.copy_(torch.randn(t.shape, generator=gen, dtype=t.dtype) * std + mean)

    for name, t in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if name.startswith("embed."):
            # unit-scale inputs to the first layer: x = scale · E[token] or x·w + b
            normal(t, 1.0 / cfg.embedding.scale if cfg.embedding.kind == "token" else 1.0)
        elif ".ema." in name:  # MEGA's initialisation
            if leaf in ("delta", "alpha"):
                normal(t, 0.2)
            elif leaf == "beta":
                normal(t, 0.02)
                t += torch.tensor([(-1.0) ** i for i in range(t.shape[1])], dtype=t.dtype).view(1, -1, 1)
            else:
                normal(t, 1.0)
        elif leaf == "qk_scale":
            normal(t, 0.3, 1.0)
        elif leaf == "qk_offset":
            normal(t, 0.3)
        elif leaf == "rel_bias":
            normal(t, 0.5)
        elif ".norm." in name or name.startswith("final_norm."):
            normal(t, 0.1, 1.0 if leaf in ("weight", "scalar") else 0.0)
        elif leaf == "weight":  # Linear [out, in]
            normal(t, t.shape[1] ** -0.5)
        else:  # Linear bias
            normal(t, 0.02)
    for name, buf in model.named_buffers():
        if name.endswith("running_mean"):
            normal(buf, 0.1)
        elif name.endswith("running_var"):
            buf.copy_(torch.rand(buf.shape, generator=gen, dtype=buf.dtype) * 1.5 + 0.5)

    # Codebooks, layer by layer: layer i's keys depend on the codebooks of layers < i.
    if cfg.embedding.kind == "token":
        inputs = torch.randint(cfg.vocab_size, (calib_batch, calib_len), generator=gen)
    else:
        inputs = torch.randn(calib_batch, calib_len, generator=gen, dtype=torch.float64)
    x = model.embed_inputs(inputs)
    for layer in model.layers:
        mix = layer.mix
        x_norm = mix.norm(x) if cfg.prenorm else x
        x_ema = ema_conv(x_norm, None, *mix.ema.params(), bidirectional=cfg.bidirectional)
        keys = mix.gates(x_norm, x_ema)[-1].reshape(-1, cfg.z_dim)
        mix.codebook.copy_(_kmeans(keys, cfg.attention.codebook_size, gen))
        y, _ = mix(x)
        x = layer._ffn(y)
    return model.float().eval()


def _main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m longvq_ref.export", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("random", help="write a random model of the given config (benchmarks, tests)")
    r.add_argument("--config", required=True, help="config.json to build (see docs/file-formats.md)")
    r.add_argument("--out", required=True, help="output model directory, e.g. models/random-100m")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--bf16", action="store_true", help="store matrices as bf16 (half the bytes)")
    r.add_argument("--int8", action="store_true", help="store matrices as int8 q8_0 (about a quarter of the bytes)")
    c = sub.add_parser("convert", help="re-save a model directory, e.g. with bf16 matrices (half the bytes)")
    c.add_argument("model_dir")
    c.add_argument("--out", required=True, help="output model directory, e.g. models/austen-lm-bf16")
    c.add_argument("--bf16", action="store_true", help="store the weight matrices as bf16 (round to nearest even)")
    c.add_argument("--int8", action="store_true",
                   help="store the weight matrices as int8 with an f16 scale per block of 32 inputs (q8_0)")
    i = sub.add_parser("info", help="validate a model directory and print its config and size")
    i.add_argument("model_dir")
    args = p.parse_args(argv)
    if getattr(args, "bf16", False) and getattr(args, "int8", False):
        p.error("--bf16 and --int8 exclude each other")
    try:
        if args.cmd == "random":
            cfg = Config.load(args.config)
            print(f"building a random model with {parameter_count(cfg):,} parameters ...", file=sys.stderr)
            model = random_model(cfg, seed=args.seed)
            card = default_card(cfg, Path(args.out).name) + (
                f"\nRandom weights (seed {args.seed}), codebooks fitted to the model's own keys: for "
                f"benchmarks and tests only; it has learned nothing.\n\nMade by `python3 -m longvq_ref.export "
                f"random --config {args.config} --out {args.out} --seed {args.seed}`.\n")
            print(save_model(model, args.out, card=card, bf16=args.bf16, int8=args.int8))
        elif args.cmd == "convert":
            if Path(args.out).resolve() == Path(args.model_dir).resolve():
                raise OSError(f"--out {args.out} is the input directory; write the converted model elsewhere")
            model = load_model(args.model_dir, dtype=torch.float32)
            card_path = Path(args.model_dir) / "README.md"
            card = card_path.read_text() if card_path.exists() else default_card(model.cfg, Path(args.out).name)
            flag = " --bf16" if args.bf16 else " --int8" if args.int8 else ""
            what = (": weight matrices stored as bf16 (rounded to nearest even), everything else fp32; the engine "
                    "streams them as bf16. Numbers above were measured on the fp32 original.\n" if args.bf16 else
                    ": weight matrices stored as int8 with an f16 scale per block of 32 inputs (q8_0, "
                    "docs/file-formats.md), everything else fp32; the engine streams them as int8 on the CPU. "
                    "Numbers above were measured on the fp32 original.\n" if args.int8 else ".\n")
            card += (f"\n## Storage\n\nConverted from `{args.model_dir}` by `python3 -m longvq_ref.export convert"
                     f"{flag}`" + what)
            print(save_model(model, args.out, card=card, bf16=args.bf16, int8=args.int8))
        else:
            model = load_model(args.model_dir, dtype=torch.float32)
            print(model.cfg.to_json(), end="")
            print(f"parameters: {parameter_count(model.cfg):,}")
    except (ConfigError, ModelFileError, safetensors_io.SafetensorsError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
