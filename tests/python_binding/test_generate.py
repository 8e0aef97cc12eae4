"""Model.generate and Model.perplexity against `longvq generate` / `longvq perplexity`."""
import json
import re

import pytest

import longvq
from conftest import DATA, FIXTURES, run_cli

PROMPT = "It is a truth universally acknowledged"


def cli_text(model, prompt, *args):
    return run_cli("generate", "-m", model, "-p", prompt, "--no-progress", *args).stdout


def test_greedy_text_equals_cli(austen):
    g = austen.generate(PROMPT, max_tokens=60, temperature=0)
    pieces = list(g)
    assert g.finish_reason == "length" and len(g.tokens) == 60
    assert "".join(pieces) == g.text
    assert (PROMPT + g.text).encode() == cli_text("models/austen-lm", PROMPT, "-n", 60, "--temp", 0)


def test_seeded_sample_equals_cli(austen):
    g = austen.generate(PROMPT, max_tokens=80, seed=7)
    text = "".join(g)
    assert g.seed == 7
    assert (PROMPT + text).encode() == cli_text("models/austen-lm", PROMPT, "-n", 80, "--seed", 7)
    # Another seed, other sampling parameters: still the CLI's text.
    g = austen.generate("Emma", max_tokens=50, seed=3, temperature=1.1, top_k=0, top_p=0.9, min_p=0.0,
                        repeat_penalty=1.3, repeat_last_n=16)
    want = cli_text("models/austen-lm", "Emma", "-n", 50, "--seed", 3, "--temp", 1.1, "--top-k", 0,
                    "--top-p", 0.9, "--min-p", 0, "--repeat-penalty", 1.3, "--repeat-last-n", 16)
    assert ("Emma" + "".join(g)).encode() == want


def test_json_tokens_logprobs_stop_equal_cli(austen):
    g = austen.generate("Emma said", max_tokens=40, seed=11, stop=["."], logprobs=2)
    text = "".join(g)
    cli = json.loads(cli_text("models/austen-lm", "Emma said", "-n", 40, "--seed", 11, "--stop", ".", "--json",
                              "--logprobs", 2))
    assert text == cli["text"] and g.finish_reason == cli["finish_reason"]
    assert g.tokens == [t["id"] for t in cli["tokens"]]
    assert g.logprobs == [t["logprob"] for t in cli["tokens"]]
    assert [len(t) for t in g.top_logprobs] == [2] * len(g.tokens)
    assert g.prompt_tokens == cli["usage"]["prompt_tokens"]


def test_vocab_model_text_equals_cli(vocab_lm):
    words = vocab_lm.config["tokenizer"]["tokens"]
    prompt = " ".join(w for w in words[:8] if not w.startswith("<"))[:60]
    g = vocab_lm.generate(prompt, max_tokens=12, seed=5, ignore_eos=True)
    text = "".join(g)
    want = cli_text(FIXTURES / "lm_rmsnorm_postnorm_untied", prompt, "-n", 12, "--seed", 5, "--ignore-eos")
    assert vocab_lm.decode(vocab_lm.encode(prompt)).encode() + text.encode() == want


def test_defaults_are_the_clis(austen):
    help_text = run_cli("generate", "--help").stdout.decode()
    for flag, key in [("--temp", "temperature"), ("--top-k", "top_k"), ("--top-p", "top_p"), ("--min-p", "min_p"),
                      ("--repeat-penalty", "repeat_penalty"), ("--repeat-last-n", "repeat_last_n")]:
        m = re.search(re.escape(flag) + r" \S+ +.*?\(default: ([0-9.]+)\)", help_text)
        assert m, flag
        assert float(m.group(1)) == longvq.DEFAULT_SAMPLING[key], flag
    import inspect
    sig = inspect.signature(longvq.Model.generate)
    for key, value in longvq.DEFAULT_SAMPLING.items():
        assert sig.parameters[key].default == value


def test_generator_protocol(tiny_lm):
    g = tiny_lm.generate("Hello", max_tokens=5, seed=1)
    assert g.finish_reason is None and g.tokens == [] and g.text == ""
    assert iter(g) is g
    rest = list(g)
    assert g.finish_reason in ("length", "stop") and len(g.tokens) <= 5
    assert list(g) == [] and "".join(rest) == g.text and g.data.decode(errors="replace") == g.text
    g = tiny_lm.generate("Hello", max_tokens=50, seed=1)
    next(g)
    g.close()
    assert g.finish_reason == "cancelled"
    g = tiny_lm.generate([1, 2, 3], max_tokens=0)  # token ids as the prompt; nothing to sample
    assert list(g) == [] and g.finish_reason == "length" and g.prompt_tokens == 3  # <bos> + 3, last pending


def test_generate_bad_arguments(tiny_lm, tiny_cls):
    with pytest.raises(ValueError, match="max_tokens must be >= 0"):
        tiny_lm.generate("a", max_tokens=-1)
    with pytest.raises(ValueError, match="temperature"):
        tiny_lm.generate("a", temperature=-0.5)
    with pytest.raises(ValueError, match="top_p"):
        tiny_lm.generate("a", top_p=1.5)
    with pytest.raises(ValueError, match="logprobs"):
        tiny_lm.generate("a", logprobs=21)
    with pytest.raises(ValueError, match="seed"):
        tiny_lm.generate("a", seed=-2)
    with pytest.raises(TypeError, match="stop"):
        tiny_lm.generate("a", stop=[1])
    with pytest.raises(TypeError):
        tiny_lm.generate("a", max_tokens="3")
    with pytest.raises(ValueError, match="classifier"):
        tiny_cls.generate("a")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        list(tiny_lm.generate([100000], max_tokens=1))


def test_perplexity_equals_cli(austen, tmp_path):
    text = (DATA / "austen_test20k.txt").read_bytes()[:6000]
    path = tmp_path / "prefix.txt"
    path.write_bytes(text)
    cli = json.loads(run_cli("perplexity", "-m", "models/austen-lm", "-f", path, "--json").stdout)
    r = austen.perplexity(text, chunk=256, per_byte=True)
    for key in ("bits_per_byte", "perplexity_per_byte", "nats_per_byte", "bytes", "tokens"):
        assert r[key] == cli[key], key
    assert r["logprobs"].shape == (len(text),)
    assert abs(-float(r["logprobs"].astype("float64").sum()) / len(text) - r["nats_per_byte"]) < 1e-5
    assert austen.perplexity(text.decode())["bits_per_byte"] == r["bits_per_byte"]  # str: its UTF-8 bytes


def test_perplexity_errors(austen, tiny_cls):
    with pytest.raises(ValueError, match="empty"):
        austen.perplexity(b"")
    with pytest.raises(ValueError, match="bytes tokenizer"):
        tiny_cls.perplexity("x")
    with pytest.raises(TypeError, match="str or bytes"):
        austen.perplexity(12)
    with pytest.raises(ValueError, match="chunk"):
        austen.perplexity("x", chunk=0)
