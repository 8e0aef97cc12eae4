"""Carried-state LM training (recipes.Recipe.carry_state): the pieces train.py puts together.

A training step continues each row's state from the previous step (truncated BPTT), so the
straight-through prefill must score exactly like the plain one, rows must continue their text
byte for byte, a restarted row must start from a fresh state, and a checkpoint must restore the
carried state exactly. Regularization (dropout, the weight average) must leave the model's
math alone outside training.
"""
import numpy as np
import torch

from conftest import LM_CONFIGS, TOL, assert_close, make_inputs, make_model
from longvq_ref import recipes
from longvq_ref.train import WeightAverage, restart_rows, state_from_tensors


def test_straight_through_prefill_scores_like_prefill_and_trains_the_keys():
    for name, make_cfg in LM_CONFIGS.items():
        cfg = make_cfg()
        model = make_model(cfg, seed=5)
        x = make_inputs(cfg, 2, 20, seed=6)
        _, st = model.prefill(x[:, :9])
        plain, plain_state = model.prefill(x[:, 9:], st)
        sink = []
        model.layers[0].mix.key_sink = sink
        try:
            st_logits, st_state = model.prefill(x[:, 9:], st, straight_through=True)
        finally:
            model.layers[0].mix.key_sink = None
        assert_close(st_logits, plain, TOL[torch.float64], name)
        assert torch.equal(st_state.layers[0].cache_n, plain_state.layers[0].cache_n), name
        keys = sink[0][0]
        keys.retain_grad()
        st_logits.square().sum().backward()
        assert keys.grad is not None and keys.grad.abs().sum() > 0, f"{name}: no gradient reaches the keys"


def austen_task(text: bytes, seq_len: int, stream_mean: int) -> recipes.AustenTask:
    task = object.__new__(recipes.AustenTask)  # the real class on a synthetic text (no data set needed)
    task.r = recipes.Recipe("t", None, "austen", steps=1, batch=3, seq_len=seq_len, carry_state=True,
                            stream_mean=stream_mean)
    task.text = {"train": np.frombuffer(text, dtype=np.uint8)}
    task.bos = 256
    return task


def test_stream_batches_continue_each_row_and_restart_with_bos():
    text = bytes(range(200)) * 5
    task = austen_task(text, seq_len=16, stream_mean=10**9)  # no random restarts
    gen = torch.Generator().manual_seed(0)
    cursors = torch.full((3,), -1)
    inputs, targets, restart = task.stream_batch(cursors, gen)
    assert restart.all() and (inputs[:, 0] == 256).all()
    assert torch.equal(inputs[:, 1:], targets[:, :-1])
    for _ in range(4):
        last = targets[:, -1].clone()
        start = cursors.clone()
        inputs, targets, restart = task.stream_batch(cursors, gen)
        if restart.any():  # a row that ran off the end of the text starts again
            assert (inputs[restart, 0] == 256).all()
        keep = ~restart
        assert torch.equal(inputs[keep, 0], last[keep]), "a continuing row's first input is its last target"
        for b in torch.nonzero(keep).flatten().tolist():
            s = int(start[b])
            assert targets[b].tolist() == list(text[s:s + 16])
    # With stream_mean == seq_len every row restarts every step.
    task = austen_task(text, seq_len=16, stream_mean=16)
    cursors = torch.full((3,), -1)
    task.stream_batch(cursors, gen)
    assert task.stream_batch(cursors, gen)[2].all()


def test_restart_rows_and_checkpointed_state():
    cfg = LM_CONFIGS[next(iter(LM_CONFIGS))]()
    model = make_model(cfg, seed=7)
    _, st = model.prefill(make_inputs(cfg, 3, 11, seed=8))
    mixed = restart_rows(st, model.init_state(3), torch.tensor([False, True, False]))
    assert mixed.pos.tolist() == [11, 0, 11]
    for a, b in zip(mixed.layers, st.layers):
        assert torch.equal(a.ring_codes[1], torch.full_like(a.ring_codes[1], -1))
        assert a.cache_n[1].sum() == 0 and a.ema[1].abs().sum() == 0
        assert torch.equal(a.cache_u[[0, 2]], b.cache_u[[0, 2]])
    back = state_from_tensors(dict(mixed.tensors()), model.init_state(3))
    assert torch.equal(back.pos, mixed.pos)
    for a, b in zip(back.layers, mixed.layers):
        assert torch.equal(a.cache_u, b.cache_u) and torch.equal(a.ring_codes, b.ring_codes)


def test_extra_training_text_joins_the_training_split_only(monkeypatch):
    from longvq_data import austen, bible
    monkeypatch.setattr(austen, "load", lambda split: f"austen {split}".encode())
    monkeypatch.setattr(bible, "load", lambda split: b"in the beginning")
    r = recipes.Recipe("t", None, "austen", steps=1, batch=1, seq_len=4, extra_train=["bible"])
    task = recipes.AustenTask(r)
    assert task.text["train"].tobytes() == b"austen train\n\nin the beginning"
    assert task.text["val"].tobytes() == b"austen val" and task.text["test"].tobytes() == b"austen test"
    assert "`bible` appended to the training split" in recipes._extra_text(r)


def test_dropout_is_training_only():
    """set_dropout changes training forwards only: in eval() the model is §2 exactly."""
    for name, make_cfg in LM_CONFIGS.items():
        cfg = make_cfg()
        model = make_model(cfg, seed=7)
        x = make_inputs(cfg, 2, 24, seed=8)
        exact = model.eval()(x)
        model.set_dropout(0.3)
        assert torch.equal(model.eval()(x), exact), name
        torch.manual_seed(0)
        assert not torch.allclose(model.train()(x), exact), f"{name}: dropout did nothing in training"
        model.set_dropout(0.0)
        assert_close(model.train()(x), exact, TOL[torch.float64], name)


def test_weight_average_is_a_running_average_of_weights_and_codebooks():
    cfg = next(iter(LM_CONFIGS.values()))()
    model = make_model(cfg, seed=9)
    avg = WeightAverage(model, decay=0.75)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        model.layers[0].mix.codebook.add_(2.0)
    avg.update(model)
    for k, v in avg.model.state_dict().items():
        if v.is_floating_point():
            assert_close(v, 0.75 * before[k] + 0.25 * model.state_dict()[k], TOL[torch.float64], k)
    assert not avg.model.training and all(l.mix.key_sink is None for l in avg.model.layers)
