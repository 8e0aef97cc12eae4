"""Invariants 1–5 of longvq-model.md §7 on the whole model, for every config option.

1. fast == dense;  2. decode step by step == parallel forward (logits, every layer, codes);
3. prefill split anywhere then decode == one prefill == all steps;  4. batched == alone;
5. save state → restore → continue == continue.   Tolerances: conftest.TOL, relative to scale.
"""
import numpy as np
import pytest
import torch

from conftest import CLS_CONFIGS, LM_CONFIGS, TOL, assert_close, make_inputs, make_model
from longvq_ref import safetensors_io
from longvq_ref.state import State, StateError

# Lengths around the window and the block size: n < W, n = W, W + 1, several blocks, n % L ≠ 0.
def lengths_for(cfg):
    w = cfg.attention.window
    return sorted({1, max(1, w - 1), max(1, w), w + 1, 2 * w + 3, 37})


@pytest.fixture(params=list(LM_CONFIGS), scope="module")
def lm(request):
    cfg = LM_CONFIGS[request.param]()
    return cfg, make_model(cfg, seed=hash(request.param) % 1000)


@pytest.fixture(params=list(CLS_CONFIGS), scope="module")
def cls(request):
    cfg = CLS_CONFIGS[request.param]()
    return cfg, make_model(cfg, seed=hash(request.param) % 1000)


def as_dtype(model, dtype):
    return model.to(dtype)


@torch.no_grad()
def test_lm_fast_equals_dense(lm, dtype):
    cfg, model = lm
    model = as_dtype(model, dtype)
    for n in lengths_for(cfg):
        x = make_inputs(cfg, 2, n, seed=n)
        dense, dl = model(x, attention="dense", return_layers=True)
        for block_len in (None, max(cfg.attention.window, 1), max(cfg.attention.window, 1) + 3):
            fast, fl = model(x, attention="fast", block_len=block_len, return_layers=True)
            assert_close(fast, dense, TOL[dtype], f"n={n} block_len={block_len}")
            for (a, ca), (b, cb) in zip(fl, dl):
                assert torch.equal(ca, cb)


@torch.no_grad()
def test_lm_decode_equals_forward(lm, dtype):
    cfg, model = lm
    model = as_dtype(model, dtype)
    n = 37
    x = make_inputs(cfg, 3, n, seed=1)
    full, layers = model(x, return_layers=True)
    state = model.init_state(3)
    steps = [model.step(x[:, t], state, return_layers=True) for t in range(n)]
    for i, (out, codes) in enumerate(layers):  # codes first: a flipped code explains any later diff
        assert torch.equal(torch.stack([s[1][i][1] for s in steps], 1), codes), f"layer {i} codes"
        assert_close(torch.stack([s[1][i][0] for s in steps], 1), out, TOL[dtype], f"layer {i} output")
    assert_close(torch.stack([s[0] for s in steps], 1), full, TOL[dtype], "decode logits")
    assert state.pos.tolist() == [n] * 3


@torch.no_grad()
def test_lm_prefill_split_anywhere(lm, dtype):
    cfg, model = lm
    model = as_dtype(model, dtype)
    n = 30
    x = make_inputs(cfg, 2, n, seed=2)
    full = model(x)
    ref_state = model.init_state(2)
    for t in range(n):
        model.step(x[:, t], ref_state)
    w = cfg.attention.window
    for split in sorted({1, max(1, w - 1), w, w + 1, 13, n - 1}):
        if split >= n:
            continue
        lg1, st = model.prefill(x[:, :split])
        for block_len in (None, max(w, 1)):
            lg2, st2 = model.prefill(x[:, split:], st, block_len=block_len)
            assert_close(torch.cat([lg1, lg2], 1), full, TOL[dtype], f"split {split}")
            compare_states(st2, ref_state, TOL[dtype])
        # ... and decoding after a prefill continues exactly
        st3 = st.clone()
        steps = torch.stack([model.step(x[:, t], st3) for t in range(split, n)], 1)
        assert_close(steps, full[:, split:], TOL[dtype], f"decode after prefill {split}")
    # Three uneven chunks in a row.
    st, outs = None, []
    for a, b in [(0, 4), (4, 5), (5, n)]:
        lg, st = model.prefill(x[:, a:b], st)
        outs.append(lg)
    assert_close(torch.cat(outs, 1), full, TOL[dtype], "three chunks")


def compare_states(a: State, b: State, tol):
    assert torch.equal(a.pos, b.pos)
    for i, (la, lb) in enumerate(zip(a.layers, b.layers)):
        assert torch.equal(la.ring_codes, lb.ring_codes), f"layer {i} ring codes"
        assert torch.equal(la.cache_n, lb.cache_n), f"layer {i} counts"
        assert_close(la.ema, lb.ema, tol, f"layer {i} ema")
        assert_close(la.ring_values, lb.ring_values, tol, f"layer {i} ring values")
        assert_close(la.cache_u, lb.cache_u, tol, f"layer {i} U")
        if la.ring_keys is not None:
            assert_close(la.ring_keys, lb.ring_keys, tol, f"layer {i} ring keys")


@torch.no_grad()
def test_lm_batched_equals_alone(lm, dtype):
    """Sequences at different positions decode together exactly as each alone."""
    cfg, model = lm
    model = as_dtype(model, dtype)
    x = make_inputs(cfg, 3, 25, seed=3)
    prompt_lens = [2, 9, 15]
    alone = []
    for b, p in enumerate(prompt_lens):
        lg, st = model.prefill(x[b:b + 1, :p])
        alone.append((st, torch.stack([model.step(x[b:b + 1, t], st) for t in range(p, p + 8)], 1)))
    # Prefill each at its own length, then decode all three in one batch.
    batch_state = State.cat([model.prefill(x[b:b + 1, :p])[1] for b, p in enumerate(prompt_lens)])
    steps = []
    for k in range(8):
        tok = torch.stack([x[b, p + k] for b, p in enumerate(prompt_lens)])
        steps.append(model.step(tok, batch_state))
    batched = torch.stack(steps, 1)
    for b in range(3):
        assert_close(batched[b:b + 1], alone[b][1], TOL[dtype], f"sequence {b}")
        compare_states(batch_state.select([b]), alone[b][0], TOL[dtype])
    # A batched prefill from unequal positions equals the single ones too.
    chunk = make_inputs(cfg, 3, 6, seed=4)
    lg_b, st_b = model.prefill(chunk, batch_state)
    for b in range(3):
        lg_1, st_1 = model.prefill(chunk[b:b + 1], alone[b][0])
        assert_close(lg_b[b:b + 1], lg_1, TOL[dtype], f"batched prefill {b}")
        compare_states(st_b.select([b]), st_1, TOL[dtype])


@torch.no_grad()
def test_lm_save_restore_continue(lm, tmp_path, dtype):
    cfg, model = lm
    model = as_dtype(model, dtype)
    x = make_inputs(cfg, 2, 20, seed=5)
    _, st = model.prefill(x[:, :11])
    st.save(tmp_path / "s.safetensors", cfg)
    cont = torch.stack([model.step(x[:, t], st) for t in range(11, 20)], 1)
    restored = State.load(tmp_path / "s.safetensors", cfg, dtype=dtype)
    again = torch.stack([model.step(x[:, t], restored) for t in range(11, 20)], 1)
    assert torch.equal(cont, again), "restore then continue must be bit-identical to continuing"


def test_state_file_refuses_other_models(tmp_path):
    cfg = LM_CONFIGS["layernorm_prenorm_tied"]()
    other = LM_CONFIGS["rmsnorm_postnorm_untied_noffn"]()
    State.zeros(cfg, 1).save(tmp_path / "s.safetensors", cfg)
    with pytest.raises(StateError, match="made by another model"):
        State.load(tmp_path / "s.safetensors", other)


def test_state_file_checksum_refuses_damage_and_version_1_warns(tmp_path):
    cfg = LM_CONFIGS["layernorm_prenorm_tied"]()
    path = tmp_path / "s.safetensors"
    State.zeros(cfg, 2).save(path, cfg)
    arrays, meta = safetensors_io.read(path)
    assert meta["version"] == "2" and meta["data_crc32"] == safetensors_io.data_crc32(path)
    State.load(path, cfg)
    blob = bytearray(path.read_bytes())
    blob[-3] ^= 0x10  # one flipped bit in the data
    (tmp_path / "flip.safetensors").write_bytes(bytes(blob))
    with pytest.raises(StateError, match="checksum"):
        State.load(tmp_path / "flip.safetensors", cfg)
    del meta["data_crc32"]
    safetensors_io.write(tmp_path / "v1.safetensors", arrays, {**meta, "version": "1"})
    with pytest.warns(UserWarning, match="version 1 state file has no checksum"):
        State.load(tmp_path / "v1.safetensors", cfg)
    safetensors_io.write(tmp_path / "nocrc.safetensors", arrays, meta)
    with pytest.raises(StateError, match="data_crc32"):
        State.load(tmp_path / "nocrc.safetensors", cfg)
    arrays["pos"] = np.array([0, 2**63 - 1], dtype=np.int64)
    safetensors_io.write(tmp_path / "pos.safetensors", arrays, meta, data_crc32_key="data_crc32")
    with pytest.raises(StateError, match="outside 0..2147483647"):
        State.load(tmp_path / "pos.safetensors", cfg)


@torch.no_grad()
def test_cls_fast_equals_dense_with_pads(cls, dtype):
    cfg, model = cls
    model = as_dtype(model, dtype)
    for n in lengths_for(cfg):
        x = make_inputs(cfg, 3, n, seed=n)
        lengths = torch.tensor([n, max(1, n - 2), max(1, (n + 1) // 2)])
        dense, dl = model(x, lengths, attention="dense", return_layers=True)
        for block_len in (None, max(cfg.attention.window, 1)):
            fast, fl = model(x, lengths, block_len=block_len, return_layers=True)
            assert_close(fast, dense, TOL[dtype], f"n={n} block_len={block_len}")
            for (a, ca), (b, cb) in zip(fl, dl):
                assert torch.equal(ca, cb)


@torch.no_grad()
def test_cls_batched_with_pads_equals_alone(cls, dtype):
    cfg, model = cls
    model = as_dtype(model, dtype)
    lens = [23, 9, 1, 16]
    x = make_inputs(cfg, len(lens), max(lens), seed=7)
    batched = model(x, torch.tensor(lens))
    for b, n in enumerate(lens):
        alone = model(x[b:b + 1, :n])
        assert_close(batched[b:b + 1], alone, TOL[dtype], f"sequence {b} (length {n})")
    # Pad content must not matter.
    garbage = x.clone()
    for b, n in enumerate(lens):
        garbage[b, n:] = garbage[b, n:].flip(0) if cfg.embedding.kind == "token" else 1e3
    assert_close(model(garbage, torch.tensor(lens)), batched, TOL[dtype], "pad content")


def test_bidirectional_model_refuses_decode():
    cfg = CLS_CONFIGS["batchnorm_tokens"]()
    model = make_model(cfg)
    with pytest.raises(ValueError, match="causal"):
        model.step(torch.zeros(1, dtype=torch.long), model.init_state(1))
