"""Session / State: step-by-step decoding, memory (views and copies), files, errors; load()."""
import json

import numpy as np
import pytest

import longvq
from conftest import FIXTURES, MODELS, run_cli


def test_prefill_decode_rows(tiny_lm):
    s = tiny_lm.session(max_batch=2)
    V = tiny_lm.info()["vocab_size"]
    bos = tiny_lm.special_id("<bos>")
    ids = [bos] + tiny_lm.encode("Hello")
    one = s.new_state(1)
    two = s.new_state(2)
    a = s.prefill(one, ids)
    b = s.prefill(two, ids, row=1)
    assert a.shape == (V,) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)  # a row does not depend on the others
    assert two.positions == [0, len(ids)] and two.position(1) == len(ids) and two.rows == 2
    d1 = s.decode(one, [7])
    d2 = s.decode(two, [7], rows=[1])
    assert d1.shape == (1, V) and d2.shape == (1, V)
    np.testing.assert_array_equal(d1, d2)
    both = s.decode(two, [7, 8])
    assert both.shape == (2, V) and two.positions == [1, len(ids) + 2]
    # Greedy decoding through a session gives generate(temperature=0)'s tokens.
    g = tiny_lm.generate("Hello", max_tokens=6, temperature=0, ignore_eos=True)
    list(g)
    st = s.new_state()
    logits = s.prefill(st, ids)
    toks = []
    for _ in range(6):
        toks.append(int(np.argmax(logits)))
        logits = s.decode(st, [toks[-1]])[0]
    assert toks == g.tokens


def test_logits_are_owned_copies_and_out_is_filled_in_place(tiny_lm):
    s = tiny_lm.session()
    st = s.new_state()
    first = s.prefill(st, [1, 2, 3])
    assert first.flags.owndata  # not a view onto the engine's buffer, which the next call replaces
    kept = first.copy()
    s.decode(st, [4])
    s.prefill(st, [5, 6])
    np.testing.assert_array_equal(first, kept)  # later calls do not touch it
    V = s.vocab_size
    out = np.empty((1, V), np.float32)
    r = s.decode(st, [7], out=out)
    assert r is out and np.shares_memory(r, out)
    with pytest.raises(ValueError, match="shape"):
        s.decode(st, [7], out=np.empty((2, V), np.float32))
    with pytest.raises(TypeError, match="float32"):
        s.decode(st, [7], out=np.empty((1, V), np.float64))


def test_state_tensor_is_a_live_view(tiny_lm):
    s = tiny_lm.session()
    st = s.new_state(1)
    names = st.tensor_names
    assert names[0] == "state.pos"
    pos = st.tensor("state.pos")
    ema = st.tensor(names[1])
    assert np.shares_memory(pos, st.tensor("state.pos"))  # no copy: the State's own memory
    assert not pos.flags.owndata and not pos.flags.writeable
    base = pos
    while isinstance(base, np.ndarray):
        base = base.base
    assert base is st  # keeps the State alive
    assert int(pos[0]) == 0 and not ema.any()
    s.prefill(st, [1, 2, 3])
    assert int(pos[0]) == 3 and ema.any()  # the view follows the state
    with pytest.raises(ValueError):
        pos[0] = 5
    with pytest.raises(KeyError, match="state.pos"):
        st.tensor("nope")
    del st
    assert int(pos[0]) == 3  # still valid: the view holds the State


def test_save_load_continue(tiny_lm, tmp_path):
    s = tiny_lm.session(max_batch=2)
    st = s.new_state(2)
    s.prefill(st, [1, 2, 3], row=0)
    s.prefill(st, [4, 5], row=1)
    st.save(tmp_path / "all.state")
    st.save(tmp_path / "row1.state", row=1)
    back = s.load_state(tmp_path / "all.state")
    assert back.positions == st.positions
    assert longvq.State.load(tmp_path / "all.state", s).positions == st.positions
    np.testing.assert_array_equal(s.decode(back, [9, 9]), s.decode(st, [9, 9]))
    fresh = s.new_state(3)
    fresh.load_row(str(tmp_path / "row1.state"), 2)
    assert fresh.positions == [0, 0, 2]
    fresh.set_row(0, fresh, 2)
    assert fresh.position(0) == 2
    fresh.reset(0)
    assert fresh.positions == [0, 0, 2]
    fresh.reset()
    assert fresh.positions == [0, 0, 0]


def test_state_file_of_generate_continues(tiny_lm, tmp_path):
    """A state written by `longvq generate --state-out` loads into a session."""
    path = tmp_path / "ctx.state"
    run_cli("generate", "-m", FIXTURES / "lm_bytes_layernorm_tied", "-p", "Hello", "-n", 0, "--state-out", path)
    st = tiny_lm.session().load_state(path)
    assert st.position(0) == len("Hello")  # <bos> + Hello consumed but the last (pending)


def test_session_errors(tiny_lm, vocab_lm, tiny_cls, tmp_path):
    s = tiny_lm.session(max_batch=2)
    other = tiny_lm.session()
    st = s.new_state(2)
    with pytest.raises(ValueError, match="another Session"):
        other.decode(st, [1, 1])
    with pytest.raises(IndexError, match="outside the state's rows"):
        s.prefill(st, [1], row=5)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        s.decode(st, [1, 100000])
    with pytest.raises(ValueError, match="one token per row"):
        s.decode(st, [1])
    with pytest.raises(ValueError, match="listed twice"):
        s.decode(st, [1, 2], rows=[0, 0])
    with pytest.raises(TypeError, match="integers"):
        s.decode(st, np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="max_batch must be >= 1"):
        tiny_lm.session(max_batch=0)
    with pytest.raises(ValueError, match="classifier"):
        tiny_cls.session()
    (tmp_path / "bad.state").write_bytes(b"not a state file at all")
    with pytest.raises(longvq.LoadError, match="bad.state"):  # not safetensors: the file loader's message
        s.load_state(tmp_path / "bad.state")
    vs = vocab_lm.session().new_state()
    vs_path = tmp_path / "vocab.state"
    vs.save(vs_path)
    with pytest.raises(longvq.StateError) as e:  # another model's state: the engine's message
        s.load_state(vs_path)
    assert isinstance(e.value, ValueError) and "vocab.state" in str(e.value)


def test_load_and_info(tmp_path):
    with pytest.raises(longvq.LoadError) as e:
        longvq.load(tmp_path / "missing")
    assert isinstance(e.value, OSError) and "missing" in str(e.value) and e.value.kind
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{")
    (tmp_path / "bad" / "model.safetensors").write_bytes(b"")
    with pytest.raises(longvq.LoadError, match="config.json"):
        longvq.load(tmp_path / "bad")
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        longvq.load(MODELS / "listops", backend="gpu")
    with pytest.raises(ValueError, match="threads"):
        longvq.load(MODELS / "listops", threads=-1)
    with pytest.raises(TypeError, match="path"):
        longvq.load(12)
    m = longvq.load(str(MODELS / "listops"), backend="cpu", mmap=False)
    info = m.info()
    assert info["task"] == "classify" and info["num_classes"] == 10 and info["state_bytes_per_row"] is None
    assert info["backend"] == "cpu" and info["dtype"] == "f32" and info["parameters"] == 161187
    assert m.config == json.loads((MODELS / "listops" / "config.json").read_text())
    assert m.path == str(MODELS / "listops")
    lm = longvq.load(MODELS / "austen-lm", backend="cpu")
    assert lm.info()["state_bytes_per_row"] == lm.session().new_state().bytes_per_row


def test_two_threads_share_a_session_safely(tiny_lm):
    """Calls on one Session from two threads take turns (no race): same results as in a row."""
    import threading
    s = tiny_lm.session(max_batch=1)
    states = [s.new_state() for _ in range(2)]
    results = [[], []]

    def run(i):
        logits = s.prefill(states[i], [1, 2, 3])
        for _ in range(20):
            t = int(np.argmax(logits))
            results[i].append(t)
            logits = s.decode(states[i], [t])[0]

    ts = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert results[0] == results[1] and len(results[0]) == 20
