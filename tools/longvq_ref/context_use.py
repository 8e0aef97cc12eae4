"""How much an LM gains from long context: a split scored as one stream (the cards' metric) and
cut into fresh windows (each from a new state and <bos>), on the same bytes.

  /usr/bin/python3 -m longvq_ref.context_use ../models/austen-lm [--split test] [--windows 256,4096]

A model that uses its context scores the stream better than short windows; one trained only on
short windows can score it worse (it never saw the longer contexts it is then given).
"""
from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

from .export import load_model

BOS = 256


def bits(model, data: np.ndarray, window: int | None, chunk: int = 2048) -> float:
    """Bits per byte of `data`: one stream (window None) or fresh windows of `window` bytes."""
    nats = 0.0
    for a in range(0, len(data), window or len(data)):
        piece = data[a:a + window] if window else data
        tokens = torch.from_numpy(np.concatenate([[BOS], piece]).astype(np.int64))[None]
        state = None
        for c in range(0, len(piece), chunk):
            logits, state = model.prefill(tokens[:, c:c + chunk], state)
            target = tokens[0, c + 1:c + 1 + logits.shape[1]]
            nats += float(F.cross_entropy(logits[0, :len(target)].double(), target, reduction="sum"))
    return nats / len(data) / math.log(2)


def main(argv=None) -> int:
    from longvq_data import austen
    p = argparse.ArgumentParser(prog="python3 -m longvq_ref.context_use", description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="an exported byte-level LM directory")
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="Austen split (default test)")
    p.add_argument("--limit", type=int, help="score only the first LIMIT bytes")
    p.add_argument("--windows", default="256,4096", help="window lengths to compare (comma-separated)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model = load_model(args.model, dtype=torch.float32).eval()
    data = np.frombuffer(austen.load(args.split), dtype=np.uint8)[:args.limit]
    with torch.no_grad():
        print(f"{args.model}, Austen {args.split} split, {len(data):,} bytes (float32):")
        print(f"  {'one stream':<28} {bits(model, data, None):.4f} bits per byte")
        for w in (int(x) for x in args.windows.split(",")):
            print(f"  {f'fresh {w:,}-byte windows':<28} {bits(model, data, w):.4f} bits per byte")
    return 0


if __name__ == "__main__":
    sys.exit(main())
