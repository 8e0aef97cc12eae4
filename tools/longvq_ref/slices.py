"""The shipped models on the committed test slices, as the reference computes them.

  /usr/bin/python3 -m longvq_ref.slices            # writes tests/data/reference_predictions.json

For each model in models/ it records the slice metric (bits per byte on the Austen slice,
accuracy on the ListOps / Fashion-MNIST slices) and, for classifiers, every prediction with its
top-2 logit margin. The engine must make identical predictions (tests/engine), and
tests/python/test_shipped_models.py recomputes all of it, so the model cards cannot drift.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from .export import load_model
from .tokenizer import Tokenizer

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
OUT = DATA / "reference_predictions.json"
AUSTEN_SLICE = DATA / "austen_test20k.txt"  # the first 20,000 bytes of the Austen test split


def bits_per_byte(model, data: bytes, chunk: int = 2048) -> float:
    """Scores [<bos>] + data as one sequence, chunked prefill carrying the state."""
    bos = Tokenizer.from_config(model.cfg).special_id("<bos>")
    tokens = torch.tensor([[bos] + list(data)])
    nats, state = 0.0, None
    with torch.no_grad():
        for a in range(0, len(data), chunk):
            logits, state = model.prefill(tokens[:, a:a + chunk], state)
            target = tokens[0, a + 1:a + 1 + logits.shape[1]]
            nats += float(torch.nn.functional.cross_entropy(logits[0, :len(target)], target, reduction="sum"))
    return nats / len(data) / math.log(2)


def listops_slice():
    rows = [line.split("\t") for line in (DATA / "listops_test200.tsv").read_text().splitlines()[1:]]
    return [r[0].split() for r in rows], np.array([int(r[1]) for r in rows])


def fashion_slice():
    sys.path.insert(0, str(REPO / "tools"))
    from longvq_data import fashion
    images = fashion.read_idx(DATA / "fashion_test1000-images-idx3-ubyte").reshape(-1, 784)
    labels = fashion.read_idx(DATA / "fashion_test1000-labels-idx1-ubyte").astype(np.int64)
    return images, labels


def classify(model, rows, batch: int = 16):
    """Predictions and top-2 margins, in input order; rows are token-id or pixel-value arrays."""
    preds, margins = np.zeros(len(rows), np.int64), np.zeros(len(rows))
    real = model.cfg.embedding.kind == "real"
    with torch.no_grad():
        for a in range(0, len(rows), batch):
            part = rows[a:a + batch]
            n = max(len(r) for r in part)
            x = torch.zeros(len(part), n, dtype=torch.float64 if real else torch.long)
            for i, r in enumerate(part):
                x[i, :len(r)] = torch.as_tensor(r)
            logits = model(x, torch.tensor([len(r) for r in part]))
            top2 = torch.topk(logits, 2, dim=-1).values
            preds[a:a + batch] = logits.argmax(-1).numpy()
            margins[a:a + batch] = (top2[:, 0] - top2[:, 1]).numpy()
    return preds, margins


def compute(models_dir: Path = REPO / "models") -> dict:
    out = {}
    for name in ("austen-lm", "listops", "fashion-seq"):
        if not (models_dir / name / "config.json").exists():
            continue
        model = load_model(models_dir / name, dtype=torch.float64)
        tok = Tokenizer.from_config(model.cfg)
        if name == "austen-lm":
            data = AUSTEN_SLICE.read_bytes()
            out[name] = {"slice": AUSTEN_SLICE.name, "bits_per_byte": bits_per_byte(model, data), "bytes": len(data)}
            continue
        if name == "listops":
            sources, labels = listops_slice()
            rows = [np.array(tok.encode(" ".join(s))) for s in sources]
            slice_name = "listops_test200.tsv"
        else:
            images, labels = fashion_slice()
            rows = [tok.encode_pixels(img).astype(np.float64) for img in images]
            slice_name = "fashion_test1000"
        preds, margins = classify(model, rows)
        out[name] = {"slice": slice_name, "accuracy": float((preds == labels).mean()), "examples": len(labels),
                     "predictions": preds.tolist(), "min_margin": float(margins.min())}
    return out


CARD_HEADING = "## On the committed test slice"


def card_section(r: dict) -> str:
    """The card's slice paragraph; test_shipped_models.py checks cards contain exactly this."""
    metric = "bits_per_byte" if "bits_per_byte" in r else "accuracy"
    size = f"{r['bytes']:,} bytes" if "bytes" in r else f"{r['examples']:,} examples"
    return (f"{CARD_HEADING}\n\n`tests/data/{r['slice']}` ({size}): {metric} **{r[metric]:.4f}**, measured by the "
            f"reference in float64 (`python3 -m longvq_ref.slices`); the engine must reproduce it "
            f"({'same predictions' if metric == 'accuracy' else 'same bits per byte'}).\n")


def write_card_section(card: Path, r: dict) -> None:
    text = card.read_text()
    if CARD_HEADING in text:
        text = text[:text.index(CARD_HEADING)].rstrip() + "\n"
    card.write_text(text.rstrip() + "\n\n" + card_section(r))


def main() -> int:
    torch.set_num_threads(1)
    result = compute()
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    for name, r in result.items():
        write_card_section(REPO / "models" / name / "README.md", r)
    for name, r in result.items():
        print(name, {k: v for k, v in r.items() if k != "predictions"}, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
