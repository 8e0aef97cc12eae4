"""Makes the committed inputs and expected values of the CLI tests (tests/cli/data/) with the
Python reference. Run from the repository root:

    /usr/bin/python3 tests/cli/make_expected.py

It writes
  data/sample_bpb.json              bits per byte of data/sample.txt under the fixture LM
                                    lm_bytes_layernorm_tied, computed by the reference's own
                                    evaluation (recipes.AustenTask.evaluate: the text scored as ONE
                                    sequence [<bos>] + bytes, chunked prefill carrying the state),
                                    in float64; test_cli_e2e.cpp compares `longvq perplexity`
                                    with it within 1e-4 relative.
  data/cls_batchnorm_tokens.jsonl   the fixture's `inputs` rows (first `lengths[b]` ids) as
                                    {"tokens": [...], "label": y}
  data/cls_pixels_postnorm_rawwin.jsonl
                                    the fixture's raw `pixels` rows as {"pixels": [...], "label": y}
where y is the argmax of the fixture's expected `logits` (so accuracy must be 1). The test
compares `longvq classify`'s probabilities with the softmax of those logits.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from longvq_ref import safetensors_io  # noqa: E402
from longvq_ref.export import load_model  # noqa: E402
from longvq_ref.recipes import AustenTask  # noqa: E402
from longvq_ref.tokenizer import Tokenizer  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
FIXTURES = ROOT / "tests" / "fixtures"


def bits_per_byte(model_dir: Path, text: bytes) -> float:
    model = load_model(model_dir, dtype=torch.float64)
    task = object.__new__(AustenTask)  # the reference's evaluation, on our text instead of Austen's
    task.text = {"test": np.frombuffer(text, dtype=np.uint8)}
    task.bos = Tokenizer.from_config(model.cfg).special_id("<bos>")
    with torch.no_grad():
        return task.evaluate(model, "test", None)["test_bits_per_byte"]


def classifier_jsonl(name: str, key: str) -> None:
    arrays, _ = safetensors_io.read(FIXTURES / name / "expected.safetensors")
    rows = arrays["pixels"] if key == "pixels" else arrays["inputs"]
    labels = arrays["logits"].argmax(-1)
    with open(DATA / f"{name}.jsonl", "w") as f:
        for b, n in enumerate(arrays["lengths"]):
            f.write(json.dumps({key: [int(v) for v in rows[b, :n]], "label": int(labels[b])}) + "\n")


def main() -> None:
    model = FIXTURES / "lm_bytes_layernorm_tied"
    text = (DATA / "sample.txt").read_bytes()
    bpb = bits_per_byte(model, text)
    out = {
        "model": "tests/fixtures/lm_bytes_layernorm_tied",
        "text": "tests/cli/data/sample.txt",
        "bytes": len(text),
        "bits_per_byte": bpb,
        "made_by": "/usr/bin/python3 tests/cli/make_expected.py (longvq_ref.recipes.AustenTask.evaluate, float64)",
    }
    (DATA / "sample_bpb.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"bits per byte: {bpb!r}")
    classifier_jsonl("cls_batchnorm_tokens", "tokens")
    classifier_jsonl("cls_pixels_postnorm_rawwin", "pixels")


if __name__ == "__main__":
    main()
