"""Writes the Python reference's answers that tests/loaders/test_config.cpp compares against.

    /usr/bin/python3 tests/loaders/make_golden.py        (from the repository root)

config_golden.jsonl  one line per config: the fixture's name or the config itself, its
                     Config.fingerprint() and export.expected_shapes() in state_dict order.
config_errors.jsonl  one line per broken config: the config and Python's ConfigError message
                     (`exact`: the C++ message must contain it; otherwise `cxx` is the fragment
                     the C++ message holds, where Python's text is a TypeError's wording).
Rerun it when config.py or model.py changes; the C++ tests then show what moved.
"""
from __future__ import annotations

import copy
import itertools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from longvq_ref.config import Config, ConfigError  # noqa: E402
from longvq_ref.export import expected_shapes  # noqa: E402

HERE = Path(__file__).resolve().parent


def golden_line(cfg: Config, **key) -> str:
    tensors = [[n, list(s)] for n, s in expected_shapes(cfg).items()]
    return json.dumps({**key, "fingerprint": cfg.fingerprint(), "tensors": tensors}, separators=(",", ":"))


def vocab_tok(n):
    return {"kind": "vocab", "tokens": [f"w{i}" for i in range(n)], "unk": None}


BASE_LM = {"vocab_size": 257, "d_model": 8, "hidden_dim": 12, "z_dim": 4, "ema_ndim": 3, "ffn_dim": 10,
           "n_layers": 1, "attention": {"codebook_size": 5, "window": 3, "quantize_window_keys": True},
           "tokenizer": {"kind": "bytes", "specials": ["<bos>"]}}
BASE_CLS = {"vocab_size": 7, "d_model": 8, "hidden_dim": 12, "z_dim": 4, "ema_ndim": 3, "ffn_dim": 10,
            "n_layers": 1, "attention": {"codebook_size": 5, "window": 3}, "task": "classify",
            "bidirectional": True, "classifier": {"num_classes": 3, "hidden": 6}, "tokenizer": vocab_tok(7)}


def good_configs():
    yield {}
    for norm, pre, aff, tie, ffn in itertools.product(("layernorm", "scalenorm", "rmsnorm"), (True, False),
                                                      (True, False), (True, False), (0, 10)):
        if not pre and not aff:
            continue  # final_norm_affine only matters with prenorm
        yield {**BASE_LM, "norm": norm, "prenorm": pre, "final_norm_affine": aff, "tie_embeddings": tie,
               "ffn_dim": ffn}
    for norm, pre, aff, real, ffn, bidir in itertools.product(
            ("layernorm", "scalenorm", "rmsnorm", "batchnorm"), (True, False), (True, False), (False, True),
            (10,), (True, False)):
        if not pre and not aff:
            continue
        raw = {**BASE_CLS, "norm": norm, "prenorm": pre, "final_norm_affine": aff, "ffn_dim": ffn,
               "bidirectional": bidir}
        if real:
            raw.update(vocab_size=0, embedding={"kind": "real"}, tokenizer={"kind": "pixels", "mean": 0.25, "std": 2})
        yield raw
    yield {**BASE_CLS, "norm": "batchnorm", "ffn_dim": 0}
    yield {**BASE_LM, "classifier": {"num_classes": 4, "hidden": 3}}  # an lm ignores a classifier section
    yield {**BASE_CLS, "tie_embeddings": False, "n_layers": 2, "attention": {"codebook_size": 1, "window": 0}}
    yield {**BASE_LM, "n_layers": 3, "attention": {"codebook_size": 2, "window": 0, "quantize_window_keys": False},
           "embedding": {"kind": "token", "scale": 2.5}, "norm_eps": 1e-6}


def mutate(base, path, value):
    raw = copy.deepcopy(base)
    *parents, leaf = path.split(".")
    node = raw
    for p in parents:
        node = node.setdefault(p, {})
    if value is DELETE:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return raw


DELETE = object()


def error_cases():
    L, C = BASE_LM, BASE_CLS
    yield mutate(L, "format_version", 2), "unknown_version", None
    for f in ("d_model", "hidden_dim", "z_dim", "ema_ndim", "n_layers"):
        yield mutate(L, f, 0), "bad_config", None
    yield mutate(L, "hidden_dim", -3), "bad_config", None
    yield mutate(L, "ffn_dim", -1), "bad_config", None
    yield mutate(L, "attention.codebook_size", 0), "bad_config", None
    yield mutate(L, "attention.window", -1), "bad_config", None
    yield mutate(L, "norm", "groupnorm"), "bad_config", None
    yield mutate(L, "norm", 5), "bad_config", None
    yield mutate(L, "norm", None), "bad_config", None
    yield mutate(L, "norm_eps", 0.0), "bad_config", None
    yield mutate(L, "norm_eps", -1e-05), "bad_config", None
    yield mutate(L, "norm_eps", 0), "bad_config", None
    yield mutate(L, "task", "translate"), "bad_config", None
    yield mutate(L, "embedding.kind", "conv"), "bad_config", None
    yield mutate(L, "tokenizer.kind", "bpe"), "bad_config", None
    yield mutate(L, "vocab_size", 0), "bad_config", None
    yield mutate(L, "embedding.scale", 0.0), "bad_config", None
    yield mutate(L, "embedding.scale", -2.5), "bad_config", None
    yield mutate(L, "bidirectional", True), "bad_config", None
    yield {**L, "embedding": {"kind": "real"}}, "bad_config", None
    yield mutate(L, "norm", "batchnorm"), "bad_config", None
    yield mutate(C, "classifier", DELETE), "bad_config", None
    yield mutate(C, "classifier", None), "bad_config", None
    yield mutate(C, "classifier.num_classes", 1), "bad_config", None
    yield mutate(C, "classifier.hidden", 0), "bad_config", None
    yield mutate(C, "classifier.pooling", "max"), "bad_config", None
    yield mutate(C, "classifier.activation", "relu"), "bad_config", None
    yield mutate(L, "vocab_size", 256), "bad_config", None
    yield mutate(L, "tokenizer.specials", ["<bos>", "<eos>"]), "bad_config", None
    yield mutate(C, "vocab_size", 8), "bad_config", None
    yield mutate(C, "tokenizer.unk", "<unk>"), "bad_config", None
    yield mutate(C, "tokenizer", {"kind": "pixels"}), "bad_config", None
    pix = {**C, "vocab_size": 0, "embedding": {"kind": "real"}, "tokenizer": {"kind": "pixels", "std": 0.0}}
    yield pix, "bad_config", None
    yield mutate(pix, "tokenizer.std", -0.5), "bad_config", None
    yield mutate(L, "foo", 1), "bad_config", None
    yield {**L, "zeta": 1, "alpha": 2}, "bad_config", None
    # several problems: the first in Config.validate()'s order is reported
    yield {**L, "d_model": 0, "norm": "groupnorm"}, "bad_config", None
    yield {**L, "norm": "groupnorm", "norm_eps": 0.0}, "bad_config", None
    yield {**L, "task": "classify", "tokenizer": {"kind": "pixels"}}, "bad_config", None
    # unknown keys inside a section: Python reports a TypeError's wording
    yield mutate(L, "attention.heads", 4), "bad_config", "bad config section 'attention': unknown field(s) ['heads']"
    yield mutate(L, "embedding.dim", 4), "bad_config", "bad config section 'embedding': unknown field(s) ['dim']"
    yield mutate(C, "classifier.dropout", 0.1), "bad_config", "bad config section 'classifier': unknown field(s) ['dropout']"
    yield mutate(L, "tokenizer.lower", True), "bad_config", "bad config section 'tokenizer': unknown field(s) ['lower']"
    yield mutate(L, "attention", None), "bad_config", "bad config section 'attention': must be a JSON object"


def main():
    lines = []
    for d in sorted((ROOT / "tests" / "fixtures").iterdir()):
        if (d / "config.json").is_file():
            lines.append(golden_line(Config.load(d / "config.json"), fixture=d.name))
    for raw in good_configs():
        lines.append(golden_line(Config.from_dict(copy.deepcopy(raw)), config=raw))
    (HERE / "config_golden.jsonl").write_text("\n".join(lines) + "\n")

    errors = []
    for raw, kind, cxx in error_cases():
        try:
            Config.from_dict(copy.deepcopy(raw))
        except ConfigError as err:
            entry = {"config": raw, "kind": kind, "error": str(err), "exact": cxx is None}
            if cxx is not None:
                entry["cxx"] = cxx
            errors.append(json.dumps(entry, separators=(",", ":")))
            continue
        raise SystemExit(f"expected a ConfigError for {raw}")
    (HERE / "config_errors.jsonl").write_text("\n".join(errors) + "\n")
    print(f"{len(lines)} configs, {len(errors)} errors")


if __name__ == "__main__":
    main()
