"""Text generation with the Python reference: prefill the prompt, then decode token by token.

  /usr/bin/python3 -m longvq_ref.generate -m models/austen-lm -p "It is a truth" -n 200

This is the reference path, slow by design; the C++ `longvq generate` is the product.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from .export import ModelFileError, load_model
from .tokenizer import Tokenizer, TokenizerError


def sample(logits, temperature: float, top_k: int, gen: torch.Generator) -> int:
    if temperature <= 0:
        return int(torch.argmax(logits))
    logits = logits / temperature
    if 0 < top_k < logits.numel():
        cut = torch.topk(logits, top_k).values[-1]
        logits = torch.where(logits < cut, torch.full_like(logits, -float("inf")), logits)
    return int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))


@torch.no_grad()
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m longvq_ref.generate", description=__doc__.split("\n\n")[0])
    p.add_argument("-m", "--model", required=True, help="model directory (config.json + model.safetensors)")
    p.add_argument("-p", "--prompt", default="", help="prompt text (default: empty)")
    p.add_argument("-n", "--n-predict", type=int, default=200, help="tokens to generate (default 200)")
    p.add_argument("--temp", type=float, default=0.8, help="temperature; 0 = greedy (default 0.8)")
    p.add_argument("--top-k", type=int, default=40, help="keep the k most likely tokens; 0 = all (default 40)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    args = p.parse_args(argv)
    if args.n_predict < 0:
        p.error("-n must be >= 0")
    torch.set_num_threads(1)
    try:
        model = load_model(args.model, dtype=torch.float32)
        if model.cfg.task != "lm":
            raise ModelFileError(f"{args.model} is a '{model.cfg.task}' model; generate needs an 'lm' model")
        tok = Tokenizer.from_config(model.cfg)
        ids = tok.encode(args.prompt)
        if not ids and tok.kind == "bytes" and "<bos>" in tok.cfg.specials:
            ids = [tok.special_id("<bos>")]
        if not ids:
            raise TokenizerError("the prompt is empty and the model has no <bos> token; pass -p TEXT")
    except (ModelFileError, TokenizerError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    gen = torch.Generator().manual_seed(args.seed)
    out = sys.stdout.buffer
    out.write(tok.decode(tok.encode(args.prompt)))
    out.flush()
    t0 = time.perf_counter()
    logits, state = model.prefill(torch.tensor([ids]))
    t1 = time.perf_counter()
    nxt = sample(logits[0, -1], args.temp, args.top_k, gen)
    for _ in range(args.n_predict):
        out.write(tok.decode([nxt]))
        out.flush()
        nxt = sample(model.step(torch.tensor([nxt]), state)[0], args.temp, args.top_k, gen)
    t2 = time.perf_counter()
    print(f"\n\nprefill: {len(ids)} tokens in {t1 - t0:.3f} s; decode: {args.n_predict} tokens in "
          f"{t2 - t1:.3f} s ({args.n_predict / max(t2 - t1, 1e-9):.1f} tokens/s, reference path)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
