"""Training the shipped models on CPU, Transformer-VQ style (issue 3).

  /usr/bin/python3 -m longvq_ref.train austen-lm [--steps N] [--minutes M] [--stop-at N] [--run-dir DIR]

Recipes (config + hyper-parameters) are in longvq_ref/recipes.py. Keys are straight-through
quantized [TVQ]; the loss adds a commitment term β·mean‖K − sg(C[c])‖²; each codebook is an
EMA of its assigned keys (C = c_sum / max(c_count, eps)); codes whose EMA count falls below a
threshold are re-seeded with a random key of the current batch. Checkpoints (every
--ckpt-every steps and at the end) make a run resumable: rerun the same command. At the end the
model is evaluated on held-out data with the reference and exported to models/<name>/.
"""
from __future__ import annotations

import argparse
import ast
import copy
import json
import math
import os
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import recipes
from .export import load_model, parameter_count, random_model, save_model
from .state import State

REPO = Path(__file__).resolve().parents[2]


class CodebookEMA:
    """Per-layer running sums and counts of assigned keys; the codebook is their ratio [TVQ]."""

    def __init__(self, model, gamma: float, dead_count: float):
        self.gamma, self.dead_count = gamma, dead_count
        self.sums = [layer.mix.codebook.clone() for layer in model.layers]
        self.counts = [torch.ones(layer.mix.codebook.shape[0]) for layer in model.layers]

    @torch.no_grad()
    def update(self, model, collected, gen: torch.Generator) -> int:
        """Folds this step's keys in; returns how many dead codes were re-seeded."""
        reseeded = 0
        for i, (layer, (k, codes, mask)) in enumerate(zip(model.layers, collected)):
            keys = k.detach().reshape(-1, k.shape[-1])
            c = codes.reshape(-1)
            if mask is not None:
                keep = mask.reshape(-1)
                keys, c = keys[keep], c[keep]
            onehot = F.one_hot(c, self.sums[i].shape[0]).to(keys.dtype)
            self.sums[i].mul_(self.gamma).add_(onehot.T @ keys, alpha=1 - self.gamma)
            self.counts[i].mul_(self.gamma).add_(onehot.sum(0), alpha=1 - self.gamma)
            dead = (self.counts[i] < self.dead_count).nonzero().flatten()
            if len(dead):
                pick = torch.randint(len(keys), (len(dead),), generator=gen)
                self.sums[i][dead] = keys[pick] * self.counts[i].mean()
                self.counts[i][dead] = self.counts[i].mean()
                reseeded += len(dead)
            layer.mix.codebook.copy_(self.sums[i] / self.counts[i].clamp_min(1e-6).unsqueeze(-1))
        return reseeded

    def state_dict(self):
        return {"sums": self.sums, "counts": self.counts}

    def load_state_dict(self, sd):
        self.sums, self.counts = sd["sums"], sd["counts"]


class WeightAverage:
    """An exponential running average of the weights (and codebooks), an eval-mode copy."""

    def __init__(self, model, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for layer in self.model.layers:
            layer.mix.key_sink = None

    @torch.no_grad()
    def update(self, model):
        for mine, theirs in zip(self.model.state_dict().values(), model.state_dict().values()):
            if mine.is_floating_point():
                mine.lerp_(theirs, 1 - self.decay)


def restart_rows(state: State, fresh: State, rows: torch.Tensor) -> State:
    """state with the rows where `rows` [B] is True taken from `fresh`."""
    def pick(old, new):
        return torch.where(rows.view(-1, *[1] * (old.dim() - 1)), new, old)
    layers = [replace(l, **{f.name: pick(getattr(l, f.name), getattr(fl, f.name))
                            for f in fields(l) if getattr(l, f.name) is not None})
              for l, fl in zip(state.layers, fresh.layers)]
    return State(layers, pick(state.pos, fresh.pos))


def state_from_tensors(tensors: dict, template: State) -> State:
    """Inverse of State.tensors() (a checkpoint's carried state)."""
    layers = [replace(l, **{f.name: tensors[f"layers.{i}.{f.name}"] for f in fields(l) if getattr(l, f.name) is not None})
              for i, l in enumerate(template.layers)]
    return State(layers, tensors["pos"])


def lr_at(step: int, progress: float, r: recipes.Recipe) -> float:
    """Linear warmup over r.warmup steps, then cosine decay to 10% of the peak as progress → 1."""
    if step < r.warmup:
        return r.lr * (step + 1) / r.warmup
    return r.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def train(r: recipes.Recipe, run_dir: Path, out_dir: Path, minutes: float | None, log=print,
          export: bool = True, stop_at: int | None = None) -> dict:
    torch.manual_seed(r.seed)
    torch.set_num_threads(r.threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = recipes.load_task(r)
    model = random_model(r.config, seed=r.seed, calib_batch=2, calib_len=256).float().train()
    if r.init_from:  # warm start: weights and codebooks of an exported model with this config
        start = load_model(REPO / r.init_from if not Path(r.init_from).is_absolute() else r.init_from)
        if start.cfg.to_dict() != r.config.to_dict():
            raise ValueError(f"{r.init_from}: its config.json differs from recipe {r.name}'s config")
        model.load_state_dict(start.float().state_dict())
        log(f"warm start from {r.init_from}")
    model.set_dropout(r.dropout)
    ema = CodebookEMA(model, r.codebook_gamma, r.dead_count)
    avg = WeightAverage(model, r.weight_avg) if r.weight_avg else None
    opt = torch.optim.AdamW(model.parameters(), lr=r.lr, betas=(0.9, 0.98), weight_decay=r.weight_decay)
    gen = torch.Generator().manual_seed(r.seed + 1)
    step, elapsed, cpu, curve = 0, 0.0, 0.0, []
    if r.carry_state:  # each row's place in the training text and its state (recipes.Recipe.carry_state)
        cursors, stream = torch.full((r.batch,), -1), model.init_state(r.batch)
    ckpt = run_dir / "checkpoint.pt"
    if ckpt.exists():
        st = torch.load(ckpt)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        ema.load_state_dict(st["ema"])
        gen.set_state(st["gen"])
        if avg is not None:  # a run that had no average yet starts it from the resumed weights
            avg.model.load_state_dict(st.get("avg", st["model"]))
        step, elapsed, cpu, curve = st["step"], st["elapsed"], st.get("cpu", st["elapsed"]), st["curve"]
        if r.carry_state and "stream" in st:
            cursors = st["stream"].pop("cursors")
            stream = state_from_tensors(st["stream"], stream)
        log(f"resumed from {ckpt} at step {step} ({elapsed / 60:.1f} min trained)")
    log(f"training {r.name}: {parameter_count(r.config):,} parameters, {r.steps} steps, batch {r.batch}")

    def save_checkpoint():
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "ema": ema.state_dict(),
                    "gen": gen.get_state(), "step": step, "elapsed": elapsed, "cpu": cpu, "curve": curve,
                    **({"avg": avg.model.state_dict()} if avg is not None else {}),
                    **({"stream": {"cursors": cursors, **stream.tensors()}} if r.carry_state else {})}, tmp)
        os.replace(tmp, ckpt)

    sinks = [[] for _ in model.layers]
    for layer, sink in zip(model.layers, sinks):
        layer.mix.key_sink = sink
    window_loss, window_tokens, t_window, t_step = [], 0, time.time(), time.time()
    c_step = time.process_time()  # CPU time: what a pause (SIGSTOP) or a busy machine does not inflate

    def progress() -> float:
        # A time budget counts like the step budget: the schedule completes at whichever ends first.
        by_steps = step / r.steps
        return max(by_steps, elapsed / (60 * minutes)) if minutes else by_steps

    while progress() < 1.0 and (stop_at is None or step < stop_at):
        for sink in sinks:
            sink.clear()
        for g in opt.param_groups:
            g["lr"] = lr_at(step, progress(), r)
        if r.carry_state:
            inputs, targets, restart = data.stream_batch(cursors, gen)
            lengths, stream = None, restart_rows(stream, model.init_state(r.batch), restart)
            out, stream = model.prefill(inputs, stream, block_len=r.block_len, straight_through=True)
            stream = State([l.map(torch.Tensor.detach) for l in stream.layers], stream.pos)  # truncated BPTT
        else:
            inputs, targets, lengths = data.batch(r.batch, gen, step)
            out = model(inputs, lengths, block_len=r.block_len, straight_through=True)
        if r.config.task == "lm":
            task_loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), targets.reshape(-1))
        else:
            task_loss = F.cross_entropy(out, targets)
        commit = 0.0
        for sink, layer in zip(sinks, model.layers):
            k, codes, mask = sink[0]
            err = ((k - layer.mix.codebook[codes]) ** 2).sum(-1)
            commit = commit + (err[mask].mean() if mask is not None else err.mean())
        loss = task_loss + r.commit_beta * commit / len(model.layers)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), r.clip)
        opt.step()
        ema.update(model, [s[0] for s in sinks], gen)
        if avg is not None:
            avg.update(model)
        step += 1
        window_loss.append(float(task_loss))
        window_tokens += int(lengths.sum()) if lengths is not None else inputs.numel()
        now = time.time()
        elapsed, t_step = elapsed + (now - t_step), now
        cpu, c_step = cpu + (time.process_time() - c_step), time.process_time()
        if step % r.log_every == 0 or progress() >= 1.0:
            rate = window_tokens / max(now - t_window, 1e-9)
            eta = (1.0 - progress()) * elapsed / max(progress(), 1e-9)
            row = {"step": step, "loss": float(np.mean(window_loss)), "lr": lr_at(step, progress(), r),
                   "tokens_per_s": rate, "minutes": elapsed / 60, "cpu_minutes": cpu / 60}
            if step % r.eval_every == 0 or progress() >= 1.0:
                with torch.no_grad():
                    model.eval()
                    row.update(data.evaluate(model, split="val", limit=r.eval_limit))
                    model.train()
                    if avg is not None:  # the averaged weights are the result; the raw ones for comparison
                        row = {**row, **{f"raw_{k}": v for k, v in row.items() if k.startswith("val_")}}
                        row.update(data.evaluate(avg.model, split="val", limit=r.eval_limit))
            curve.append(row)
            extra = " ".join(f"{k} {v:.4f}" for k, v in row.items() if "val_" in k)
            log(f"step {step}/{r.steps} loss {row['loss']:.4f} lr {row['lr']:.2e} "
                f"{rate:,.0f} tok/s ETA {eta / 60:.1f} min {extra}")
            window_loss, window_tokens, t_window = [], 0, now
        if step % r.ckpt_every == 0:
            save_checkpoint()
    save_checkpoint()
    for layer in model.layers:
        layer.mix.key_sink = None
    if avg is not None:
        model = avg.model
    model.eval()
    if not export:  # an experiment: the checkpoint and the validation curve only
        (run_dir / "curve.json").write_text(json.dumps(curve, indent=1))
        return {}
    log("final evaluation on the test split with the reference ...")
    with torch.no_grad():
        metrics = data.evaluate(model.double(), split="test", limit=None)
    metrics.update(steps=step, minutes=round(elapsed / 60, 1), cpu_hours=round(cpu / 3600, 2))
    log(json.dumps(metrics))
    (run_dir / "curve.json").write_text(json.dumps(curve, indent=1))
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    card = recipes.model_card(r, metrics, curve)
    out = save_model(model.float(), out_dir, card=card)
    (out / "learning_curve.tsv").write_text(recipes.curve_tsv(curve))
    log(f"exported {out}")
    return metrics


def reproduce_command(args) -> str:
    """The card's command: what decides the model (recipe, budget, overrides), not where files go."""
    parts = [args.recipe]
    if args.steps:
        parts.append(f"--steps {args.steps}")
    if args.minutes:
        parts.append(f"--minutes {args.minutes:g}")
    if args.stop_at:
        parts.append(f"--stop-at {args.stop_at}")
    parts += [f"--set '{item}'" if any(c in item for c in "[] ") else f"--set {item}" for item in args.set]
    return "/usr/bin/python3 -m longvq_ref.train " + " ".join(parts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m longvq_ref.train", description=__doc__.split("\n\n")[0])
    p.add_argument("recipe", choices=sorted(recipes.RECIPES), help="which model to train")
    p.add_argument("--steps", type=int, help="override the recipe's number of steps")
    p.add_argument("--minutes", type=float, help="stop (checkpoint, evaluate, export) after this much time")
    p.add_argument("--stop-at", type=int, metavar="STEP",
                   help="stop (checkpoint, evaluate, export) at this step of the schedule, which still runs "
                        "to --steps (a stage that a later warm start continues)")
    p.add_argument("--run-dir", help="checkpoints and curve (default data/runs/<recipe>)")
    p.add_argument("--out", help="model directory to export (default models/<recipe>)")
    p.add_argument("--no-export", action="store_true",
                   help="an experiment: stop after training (checkpoint and curve), no test evaluation or export")
    p.add_argument("--card-only", action="store_true",
                   help="only rewrite the model card from the finished run's metrics and curve")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a recipe field (a Python literal: lr=2e-3, curriculum=[[500,10,100,32]])")
    args = p.parse_args(argv)
    r = recipes.RECIPES[args.recipe]()
    if args.steps:
        r.steps = args.steps
    for item in args.set:
        field, _, value = item.partition("=")
        if field not in recipes.Recipe.__dataclass_fields__ or field in ("config", "name"):
            p.error(f"--set: {field!r} is not a recipe field")
        try:
            setattr(r, field, ast.literal_eval(value))
        except (ValueError, SyntaxError):
            setattr(r, field, value)  # a plain string (init_from=models/x)
    r.command = reproduce_command(args)
    run_dir = Path(args.run_dir) if args.run_dir else REPO / "data" / "runs" / r.name
    out_dir = Path(args.out) if args.out else REPO / "models" / r.name
    if args.card_only:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        curve = json.loads((run_dir / "curve.json").read_text())
        (out_dir / "README.md").write_text(recipes.model_card(r, metrics, curve))
        return 0
    train(r, run_dir, out_dir, args.minutes, log=lambda m: print(m, file=sys.stderr, flush=True),
          export=not args.no_export, stop_at=args.stop_at)
    return 0


if __name__ == "__main__":
    sys.exit(main())
