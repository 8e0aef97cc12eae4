"""The three shipped models: their configs, training hyper-parameters, data and evaluation.

A task object gives training batches and evaluates a model on a split with the reference:
  austen-lm    bits per byte of the held-out text, scored as ONE sequence (chunked prefill
               carrying the state), exactly as the engine's perplexity command scores it;
  listops      accuracy (and the majority-class baseline) on variable-length sequences;
  fashion-seq  accuracy on 784-pixel sequences.
Every evaluation also reports codebook utilization: the share of codes used on that split.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .config import AttentionConfig, ClassifierConfig, Config, EmbeddingConfig, TokenizerConfig
from .export import parameter_count

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/, for longvq_data


@dataclass
class Recipe:
    name: str
    config: Config
    data: str
    steps: int
    batch: int
    seq_len: int = 0  # LM training window
    # LM: carry each batch row's state across steps (Transformer-VQ's training): row b reads the
    # next seq_len bytes of its stream, its state detached from the previous step's; a row restarts
    # (fresh state, <bos>) at a random place with probability seq_len / stream_mean per step. Without
    # it every window starts fresh, and a model that never saw a context longer than seq_len
    # does worse past it (the held-out text is scored as one long stream).
    carry_state: bool = False
    stream_mean: int = 32768
    # LM: training-only texts (longvq_data modules: "bible") appended to the training split; the
    # model is still validated and tested on its own data set's held-out splits.
    extra_train: list = field(default_factory=list)
    # Regularization, training only (the exported model is §2 exactly): dropout on each sublayer's
    # branch; weight_avg > 0 keeps a running average of the weights (decay per step), which is what
    # is validated, tested and exported.
    dropout: float = 0.0
    weight_avg: float = 0.0
    block_len: int | None = None  # attention block of the fast path (speed only: results do not depend on it)
    lr: float = 2e-3
    warmup: int = 200
    weight_decay: float = 0.01
    clip: float = 1.0
    commit_beta: float = 1e-3
    codebook_gamma: float = 0.99
    dead_count: float = 0.05
    seed: int = 0
    threads: int = 1
    log_every: int = 25
    eval_every: int = 250
    ckpt_every: int = 100
    eval_limit: int | None = None
    # ListOps curriculum: stages (until_step, min_len, max_len, batch); after the last stage the
    # recipe's own data and batch. Each stage draws from its own pool generated with the LRA rules
    # (other lengths only), so the held-out splits are untouched.
    curriculum: list = field(default_factory=list)
    curriculum_pool: int = 20_000
    init_from: str | None = None  # warm start: a model directory (weights and codebooks), fresh optimizer
    command: str = ""
    notes: list = field(default_factory=list)


def austen_config(d: int = 192, layers: int = 6) -> Config:
    return Config(vocab_size=257, d_model=d, hidden_dim=2 * d, z_dim=d // 2, ema_ndim=16, ffn_dim=2 * d,
                  n_layers=layers, attention=AttentionConfig(codebook_size=64, window=32), norm="layernorm",
                  prenorm=True, task="lm", embedding=EmbeddingConfig("token", math.sqrt(d)), tie_embeddings=True,
                  tokenizer=TokenizerConfig(kind="bytes", specials=["<bos>"]))


AUSTEN_NOTES = [
    "**Two stages** (batch 16 × 256 bytes; stage 2 with a fresh optimizer, codebook EMA counts and schedule):\n\n"
    "| stage | steps | peak lr, warmup | training windows | starts from | test bits per byte | CPU-hours |\n"
    "|---|---|---|---|---|---|---|\n"
    "| 1 (`austen-lm-wide`) | 4,500 of a 12,000-step schedule | 2e-3, 300 | fresh | random | 1.6195 | 2.15 |\n"
    "| 2 (this model, curve above) | 2,000 of a 3,000-step schedule | 1e-3, 100 | carried state | stage 1 | **1.5326** | 0.96 |\n\n"
    "Stage 1 (its curve: `learning_curve_stage1.tsv`): `/usr/bin/python3 -m longvq_ref.train austen-lm-wide "
    "--stop-at 4500 --out ../data/austen-lm-wide-4500`; its first 1,700 steps ran under a 4,500-step schedule (the "
    "recipe was lengthened to 12,000 steps then), so a rerun gives a close, not the same, model. Stage 2: the "
    "Reproduce command above. Its schedule runs by steps or by the 105-minute budget, whichever is further along: "
    "on this busy machine the budget led until step 1,375 (48 minutes), the steps from there on (so a "
    "rerun elsewhere differs slightly); it was stopped at step 2,000 (lr 3.25e-4) because validation had stopped "
    "improving (1.5652 at step 500, 1.5385 at 1,000, 1.5376 at 1,500, 1.5422 at 2,000) while the training loss fell "
    "to 0.936 nats = 1.35 bits per byte.",
    "**What moved it** (from 1.6128, the 0.91 M-parameter model shipped before, commit 5a2a532). (1) Width and "
    "depth: d 128 → 192, 4 → 6 layers (0.91 M → 2.9 M parameters); stage 1 alone reached 1.6195, no better, as "
    "both models scored the test split worse as one stream than in pieces. (2) Carried state: trained only on fresh "
    "256-byte windows, a model never sees the long context it is scored with; the previous model scored 1.6128 "
    "on the test split as one stream but 1.5753 cut into fresh 256-byte windows, stage 1 1.6195 against 1.5904 "
    "(`/usr/bin/python3 -m longvq_ref.context_use MODEL`, float32). Training each row on from the previous step's "
    "state (Transformer-VQ's way) turned that around: this model scores 1.5326 as one stream, 1.5821 in fresh "
    "256-byte windows and 1.5237 in fresh 4,096-byte windows, so it uses its context. A controlled check on the "
    "previous model (400 steps, lr 5e-4 → 5e-5, from the shipped weights): validation 1.6115 → 1.5824 with the "
    "carried state, → 1.6061 without it (at commit 39dc77a: `/usr/bin/python3 -m longvq_ref.train austen-lm "
    "--no-export --set init_from=models/austen-lm --set steps=400 --set lr=5e-4 --set warmup=20 --set "
    "eval_every=100 --set carry_state=True`, and the same without `carry_state`).",
    "**Aim not reached** (issue 20: ≤ 1.50 bits per byte on the Austen test split): 1.5326. The gap between "
    "training loss (1.35 bits per byte) and validation (1.54) says that 2.9 M parameters on 3.6 MB of text now "
    "overfit; more text (Debian's `bible-kjv` beside the Austen training split, the test split still held out) "
    "and regularization are the next levers; the fresh-4,096-byte score (1.5237) says streams longer than "
    "`stream_mean` (32,768 bytes) in training would help a little too.",
]


def austen_recipe() -> Recipe:
    """The default LM (issue 20), stage 2 of 2: stage 1 (`austen-lm-wide`, stopped at step 4,500)
    continued with carried state across steps; the notes give both stages."""
    return Recipe("austen-lm", austen_config(), "austen", steps=3000, batch=16, seq_len=256, lr=1e-3, warmup=100,
                  eval_every=500, eval_limit=60_000, init_from="data/austen-lm-wide-4500", carry_state=True,
                  notes=AUSTEN_NOTES)


def austen_wide_recipe() -> Recipe:
    """Stage 1 of the default LM: from scratch, fresh 256-byte windows, a 12,000-step schedule of
    which the first 4,500 steps were run (`--stop-at 4500`)."""
    return Recipe("austen-lm-wide", austen_config(), "austen", steps=12000, batch=16, seq_len=256, lr=2e-3,
                  warmup=300, eval_every=500, eval_limit=60_000)


def listops_recipe() -> Recipe:
    from longvq_data import listops
    cfg = Config(vocab_size=len(listops.VOCAB), d_model=64, hidden_dim=64, z_dim=32, ema_ndim=16, ffn_dim=128,
                 n_layers=3, attention=AttentionConfig(codebook_size=64, window=32), norm="layernorm",
                 prenorm=False, bidirectional=True, task="classify", embedding=EmbeddingConfig("token"),
                 classifier=ClassifierConfig(num_classes=10, hidden=128),
                 tokenizer=TokenizerConfig(kind="vocab", tokens=list(listops.VOCAB)))
    # Curriculum (issue 20): without it two runs (lr 2e-3 for 1,650 steps; lr 1e-3 for 2,580 steps)
    # never left the majority class. Short trees first, generated with the LRA rules at other
    # lengths (the held-out splits are the LRA ones), then the 500–2,000-token training split.
    curriculum = [[500, 10, 100, 32], [1000, 100, 300, 16], [1400, 300, 600, 16]]
    notes = ["**What moved it.** The previous recipe (no curriculum; lr 2e-3 for 1,650 steps, then lr 1e-3 for "
             "2,580 steps of batch 8, 80 minutes) never left the majority class: 16.9% test against an 18.3% "
             "majority baseline. With the curriculum a 400-step experiment on 10–100-token trees alone already "
             "scored 30% on the full-length validation split; this run reached 37% validation at step 750, "
             "still in the curriculum, and the full-length stage took it to 39.7% validation, 38.5% test, in "
             "a third of the old run's time. For scale: predicting the class most frequent for the outermost "
             "operator (MAX → 9, MIN → 0, MED → 4, SM → 9) scores 37.4% on this test split, and adding, for MAX and MIN, "
             "the extreme of the top-level digits 44.0% (frequencies counted on the training split); MEGA reports 63% after 90,000 "
             "updates of batch 64, which is what going further would take."]
    return Recipe("listops", cfg, "listops", steps=2200, batch=8, block_len=64, lr=2e-3, warmup=50,
                  eval_every=250, eval_limit=300, curriculum=curriculum, notes=notes)


def fashion_recipe() -> Recipe:
    cfg = Config(vocab_size=0, d_model=64, hidden_dim=64, z_dim=32, ema_ndim=16, ffn_dim=128, n_layers=2,
                 attention=AttentionConfig(codebook_size=64, window=32), norm="layernorm", prenorm=True,
                 bidirectional=True, task="classify", embedding=EmbeddingConfig("real"),
                 classifier=ClassifierConfig(num_classes=10, hidden=128),
                 tokenizer=TokenizerConfig(kind="pixels", mean=0.2860, std=0.3530))
    # Issue 20: two more stages continue the first (the 3,000-step model of the previous recipe,
    # 80.2% test, its curve still rising), each with a fresh optimizer and schedule. The recipe's
    # defaults are stage 2; stage 3 is stage 2's model with --set overrides (see the card).
    notes = ["**Three stages** (every stage: fresh optimizer, codebook EMA counts and schedule; batch 16):\n\n"
             "| stage | steps | peak lr, warmup | starts from | test accuracy | CPU-hours |\n|---|---|---|---|---|---|\n"
             "| 1 | 3,000 | 3e-3, 100 | random | 80.16% | about 0.49 (29.6 min wall) |\n"
             "| 2 | 3,500 | 2e-3, 100 | stage 1 | 84.83% (val 85.2%) | 0.69 (56.4 min wall) |\n"
             "| 3 (this model, curve above) | 1,000 | 5e-4, 50 | stage 2 | **85.26%** (val 85.4%) | 0.19 (13.3 min wall) |\n\n"
             "7,500 steps (120,000 images, 2.2 passes over the training split) and about 1.4 CPU-hours in all. "
             "Stage 1 (the model shipped at commit 0307377): "
             "`/usr/bin/python3 -m longvq_ref.train fashion-seq --steps 3000 --set lr=3e-3 --set warmup=100 "
             "--set init_from=None --out ../data/fashion-seq-3000 --run-dir ../data/runs/fashion-seq-3000`. "
             "Stage 2: `/usr/bin/python3 -m longvq_ref.train fashion-seq --out ../data/fashion-seq-stage2` "
             "(the recipe's defaults; its curve is `learning_curve_stage2.tsv`: validation 79.3% at its step 250 "
             "while the learning rate was high, 83.8% at 2,000, 85.2% at 3,500). Stage 3: the Reproduce command above. "
             "What moved it: more steps with the learning rate decayed again; the previous card's estimate of "
             "about 10,000 steps to approach 85% was close."]
    return Recipe("fashion-seq", cfg, "fashion", steps=3500, batch=16, block_len=64, lr=2e-3, warmup=100,
                  eval_every=250, eval_limit=1000, init_from="data/fashion-seq-3000", notes=notes)


RECIPES = {"austen-lm": austen_recipe, "austen-lm-wide": austen_wide_recipe, "listops": listops_recipe, "fashion-seq": fashion_recipe}


# -- tasks ------------------------------------------------------------------------------------
def codes_used(model, run) -> dict:
    """Runs `run()` collecting every layer's codes; returns utilization (share of codes used)."""
    sinks = [[] for _ in model.layers]
    saved = [layer.mix.key_sink for layer in model.layers]
    for layer, sink in zip(model.layers, sinks):
        layer.mix.key_sink = sink
    try:
        result = run()
    finally:
        for layer, s in zip(model.layers, saved):
            layer.mix.key_sink = s
    per_layer = []
    for sink in sinks:
        used = set()
        for _, codes, mask in sink:
            used.update((codes[mask] if mask is not None else codes).flatten().tolist())
        per_layer.append(len(used) / model.cfg.attention.codebook_size)
    return result, per_layer


class AustenTask:
    def __init__(self, r: Recipe):
        from longvq_data import austen
        self.r = r
        self.text = {s: np.frombuffer(austen.load(s), dtype=np.uint8) for s in ("train", "val", "test")}
        if r.extra_train:
            import importlib
            extra = [importlib.import_module(f"longvq_data.{name}").load("train") for name in r.extra_train]
            self.text["train"] = np.frombuffer(b"\n\n".join([self.text["train"].tobytes(), *extra]), dtype=np.uint8)
        self.bos = 256

    def batch(self, bsz: int, gen: torch.Generator, step: int = 0):
        train = self.text["train"]
        t = self.r.seq_len
        starts = torch.randint(len(train) - t, (bsz,), generator=gen).numpy()
        rows = np.stack([train[s:s + t] for s in starts]).astype(np.int64)
        targets = torch.from_numpy(rows)
        inputs = torch.cat([torch.full((bsz, 1), self.bos), targets[:, :-1]], 1)  # <bos> then the text
        return inputs, targets, None

    def stream_batch(self, cursors: torch.Tensor, gen: torch.Generator):
        """Carried-state batches: cursors [B] (−1 = not started) is where each row's next target
        byte is, updated in place. Returns inputs, targets [B, seq_len] and restart [B] (rows
        that begin a new stream: their state must be fresh, their first input is <bos>)."""
        train, t = self.text["train"], self.r.seq_len
        chance = torch.rand(len(cursors), generator=gen) < t / self.r.stream_mean
        fresh = torch.randint(len(train) - t, (len(cursors),), generator=gen)
        restart = (cursors < 0) | (cursors + t > len(train)) | chance
        cursors[restart] = fresh[restart]
        starts = cursors.tolist()
        targets = torch.from_numpy(np.stack([train[c:c + t] for c in starts]).astype(np.int64))
        first = torch.tensor([self.bos if new else int(train[c - 1]) for c, new in zip(starts, restart.tolist())])
        inputs = torch.cat([first[:, None], targets[:, :-1]], 1)
        cursors += t
        return inputs, targets, restart

    def evaluate(self, model, split: str, limit: int | None):
        data = self.text[split][:limit] if limit else self.text[split]
        tokens = torch.from_numpy(np.concatenate([[self.bos], data]).astype(np.int64))[None]

        def run():
            nats, state = 0.0, None
            for a in range(0, len(data), 2048):  # one long sequence, state carried across chunks
                logits, state = model.prefill(tokens[:, a:a + 2048], state)
                target = tokens[0, a + 1:a + 1 + logits.shape[1]]
                nats += float(torch.nn.functional.cross_entropy(
                    logits[0, :len(target)].double(), target, reduction="sum"))
            return nats / len(data) / math.log(2)

        bpb, util = codes_used(model, run)
        return {f"{split}_bits_per_byte": bpb, f"{split}_codebook_utilization": float(np.mean(util)),
                f"{split}_bytes": int(len(data))}


class ClassifyTask:
    """Shared by ListOps and Fashion-MNIST: batches of similar lengths, accuracy evaluation."""

    def __init__(self, r: Recipe, splits: dict):
        self.r, self.splits = r, splits  # split → (list of input arrays, labels ndarray)
        lengths = np.array([len(x) for x in splits["train"][0]])
        self.train_by_length = np.argsort(lengths, kind="stable")

    def to_batch(self, rows, real: bool):
        n = max(len(x) for x in rows)
        dtype = torch.float32 if real else torch.long
        inputs = torch.zeros(len(rows), n, dtype=dtype)
        for b, x in enumerate(rows):
            inputs[b, :len(x)] = torch.as_tensor(x, dtype=dtype)
        return inputs, torch.tensor([len(x) for x in rows])

    def train_source(self, step: int, bsz: int):
        """(inputs, labels, indices in length order, batch size) that training draws from at `step`."""
        xs, ys = self.splits["train"]
        return xs, ys, self.train_by_length, bsz

    def batch(self, bsz: int, gen: torch.Generator, step: int = 0):
        xs, ys, by_length, bsz = self.train_source(step, bsz)
        # Neighbours in length order: little padding, still a random batch.
        start = int(torch.randint(len(xs) - bsz + 1, (1,), generator=gen))
        idx = by_length[start:start + bsz]
        inputs, lengths = self.to_batch([xs[i] for i in idx], self.real)
        return inputs, torch.from_numpy(ys[idx]).long(), lengths

    def predict(self, model, xs, bsz: int = 16):
        order = np.argsort([len(x) for x in xs], kind="stable")
        preds = np.zeros(len(xs), dtype=np.int64)
        for a in range(0, len(xs), bsz):
            idx = order[a:a + bsz]
            inputs, lengths = self.to_batch([xs[i] for i in idx], self.real)
            x = inputs.to(model.embed.weight.dtype) if self.real else inputs
            preds[idx] = model(x, lengths, block_len=self.r.block_len).argmax(-1).numpy()
        return preds

    def evaluate(self, model, split: str, limit: int | None):
        xs, ys = self.splits[split]
        xs, ys = (xs[:limit], ys[:limit]) if limit else (xs, ys)
        preds, util = codes_used(model, lambda: self.predict(model, xs))
        out = {f"{split}_accuracy": float((preds == ys).mean()),
               f"{split}_codebook_utilization": float(np.mean(util)), f"{split}_examples": len(ys)}
        if split == "test":
            out["test_majority_baseline"] = float(np.bincount(ys).max() / len(ys))
        return out


class ListOpsTask(ClassifyTask):
    real = False

    def __init__(self, r: Recipe):
        from longvq_data import listops
        index = {t: i for i, t in enumerate(listops.VOCAB)}
        splits, self.held_out = {}, set()
        for s in ("train", "val", "test"):
            rows = listops.load(s)
            splits[s] = ([np.array([index[t] for t in toks], dtype=np.int64) for toks, _ in rows],
                         np.array([y for _, y in rows], dtype=np.int64))
            if s != "train":
                self.held_out.update(listops._digest(" ".join(toks)) for toks, _ in rows)
        self.index, self.pools = index, {}
        super().__init__(r, splits)

    def stage(self, step: int):
        for i, (until, *_rest) in enumerate(self.r.curriculum):
            if step < until:
                return i
        return None

    def train_source(self, step: int, bsz: int):
        """Curriculum stage i draws from pool i: `curriculum_pool` trees generated with the LRA
        rules at that stage's lengths (seed 100 + i), never a validation or test sequence."""
        i = self.stage(step)
        if i is None:
            return super().train_source(step, bsz)
        if i not in self.pools:
            from longvq_data import listops
            _, lo, hi, _ = self.r.curriculum[i]
            rows = listops.generate(self.r.curriculum_pool, 100 + i, min_len=lo, max_len=hi,
                                    exclude=set(self.held_out))
            xs = [np.array([self.index[t] for t in toks], dtype=np.int64) for toks, _ in rows]
            ys = np.array([y for _, y in rows], dtype=np.int64)
            self.pools[i] = (xs, ys, np.argsort([len(x) for x in xs], kind="stable"))
        xs, ys, by_length = self.pools[i]
        return xs, ys, by_length, self.r.curriculum[i][3]


class FashionTask(ClassifyTask):
    real = True

    def __init__(self, r: Recipe):
        from longvq_data import fashion
        from .tokenizer import Tokenizer
        tok = Tokenizer(r.config.tokenizer)
        splits = {}
        for s in ("train", "val", "test"):
            images, labels = fashion.load(s)
            splits[s] = (list(tok.encode_pixels(images)), labels.astype(np.int64))
        super().__init__(r, splits)


def load_task(r: Recipe):
    return {"austen": AustenTask, "listops": ListOpsTask, "fashion": FashionTask}[r.data](r)


# -- cards ------------------------------------------------------------------------------------
DATA_TEXT = {
    "austen": "Jane Austen's six novels (Debian `r-cran-janeaustenr`), bytes; per book the first 90% of "
              "lines train, the next 5% validate, the last 5% test (`python3 -m longvq_data prepare austen`).",
    "listops": "ListOps generated with the LRA rules (lengths 500–2000 tokens, 10 classes), fixed seeds, "
               "96k/2k/2k train/val/test (`python3 -m longvq_data prepare listops`); the curriculum's shorter "
               "trees (below) are generated by the trainer with the same rules.",
    "fashion": "Fashion-MNIST (Debian `dataset-fashion-mnist`) as length-784 pixel sequences; 55k train, "
               "5k validation (end of the training file), 10k test.",
}


def curve_tsv(curve) -> str:
    keys = sorted({k for row in curve for k in row}, key=lambda k: (k != "step", k))
    lines = ["\t".join(keys)]
    for row in curve:
        lines.append("\t".join(f"{row[k]:.6g}" if k in row else "" for k in keys))
    return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    if isinstance(v, float) and not v.is_integer():
        return f"{v:.4f}"
    return f"{int(v):,}" if isinstance(v, (int, float)) else str(v)


def _cost(metrics: dict) -> str:
    cpu = metrics.get("cpu_hours")
    wall = f"{metrics.get('minutes')} minutes of wall time"
    return f"{cpu} CPU-hours ({wall}, on a 2-core machine shared with other work)" if cpu is not None else wall


def _curriculum_text(r: Recipe) -> str:
    if not r.curriculum:
        return ""
    parts, start = [], 0
    for until, lo, hi, bsz in r.curriculum:
        parts.append(f"steps {start:,}–{until:,}: trees of {lo}–{hi} tokens, batch {bsz}")
        start = until
    return ("\n\n**Curriculum.** " + "; ".join(parts) + f"; then the training split (500–2,000 tokens), batch "
            f"{r.batch}, to step {r.steps:,}. Each stage draws from its own pool of {r.curriculum_pool:,} trees "
            f"made with the LRA rules at those lengths (seed 100 + stage), never a validation or test sequence; "
            f"the learning-rate schedule runs over all stages. Validation is always on the LRA validation split.")


def _carry_text(r: Recipe) -> str:
    if not r.carry_state:
        return ""
    return (f"\n\n**Carried state.** Each batch row reads its text on from where the previous step stopped, "
            f"starting from that step's state (detached: truncated backpropagation through time, as "
            f"Transformer-VQ trains), and restarts at a random place with a fresh state and `<bos>` about every "
            f"{r.stream_mean:,} bytes; so the model learns to use the long context it is scored with.")


def _extra_text(r: Recipe) -> str:
    if not r.extra_train:
        return ""
    return (f"\n\n**Extra training text.** {', '.join(f'`{n}`' for n in r.extra_train)} appended to the training "
            f"split (`python3 -m longvq_data prepare NAME`); validation and test stay {r.data}'s own held-out splits.")


def _regularization_text(r: Recipe) -> str:
    parts = []
    if r.dropout:
        parts.append(f"dropout {r.dropout} on each sublayer's branch and the FFN's hidden layer (training only)")
    if r.weight_avg:
        parts.append(f"the weights validated, tested and shipped are a running average of the trained ones "
                     f"(decay {r.weight_avg} per step; `raw_val_bits_per_byte`: the trained weights themselves)")
    return "\n\n**Regularization.** " + "; ".join(parts) + "." if parts else ""


def _init_text(r: Recipe) -> str:
    if not r.init_from:
        return ""
    return (f"\n\n**Warm start.** The weights and codebooks start from `{r.init_from}` (see Reproduce); "
            f"optimizer, codebook EMA counts and schedule start afresh.")


def model_card(r: Recipe, metrics: dict, curve) -> str:
    c, a = r.config, r.config.attention
    rows = "\n".join(f"| {k} | {_fmt(v)} |" for k, v in metrics.items())
    shown = lambda k: k.startswith("val_") or k == "raw_val_bits_per_byte"  # noqa: E731
    evals = [row for row in curve if any(k.startswith("val_") for k in row)]
    val_rows = "\n".join(f"| {row['step']} | {row['loss']:.4f} | " + " | ".join(
        _fmt(row[k]) for k in sorted(row) if shown(k)) + " |" for row in evals)
    val_keys = sorted(k for k in (evals[-1] if evals else {}) if shown(k))
    notes = "\n" + "\n\n".join(r.notes) if r.notes else ""  # paragraphs after the Reproduce line
    return f"""# {r.name}

{'Causal byte-level language model' if c.task == 'lm' else 'Bidirectional sequence classifier'} in the
LongVQ architecture, trained on CPU with the project's PyTorch reference (`tools/longvq_ref`).

**Data.** {DATA_TEXT[r.data]}

**Architecture.** {parameter_count(c):,} parameters. d={c.d_model}, h={c.hidden_dim}, e={c.z_dim},
N={c.ema_ndim}, FFN {c.ffn_dim}, {c.n_layers} layers, codebook S={a.codebook_size}, window W={a.window}
(window keys {'quantized' if a.quantize_window_keys else 'raw'}), {c.norm}
({'prenorm' if c.prenorm else 'postnorm'}), {'bidirectional' if c.bidirectional else 'causal'}.
Full config in `config.json`.

**Training.** {metrics.get('steps')} steps of batch {r.batch}{f' × {r.seq_len} bytes' if r.seq_len else ''},
AdamW (β 0.9/0.98, weight decay {r.weight_decay}), peak lr {r.lr} with {r.warmup} warmup steps and cosine
decay to 10%, gradient clip {r.clip}; straight-through keys, commitment β {r.commit_beta}, codebook EMA γ
{r.codebook_gamma}, dead codes (EMA count < {r.dead_count}) re-seeded from batch keys. Seed {r.seed},
{r.threads} thread, {_cost(metrics)}.\
{_curriculum_text(r)}{_carry_text(r)}{_extra_text(r)}{_regularization_text(r)}{_init_text(r)}

**Held-out metrics** (measured by the reference in float64 on the test split):

| metric | value |
|---|---|
{rows}

**Validation during training** (full curve: `learning_curve.tsv`):

| step | train loss | {' | '.join(val_keys)} |
|---|---|{'---|' * len(val_keys)}
{val_rows}

**Reproduce:** `cd tools && {r.command}` (after `python3 -m longvq_data prepare {r.data}`).
{notes}
"""
