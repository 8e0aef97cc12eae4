"""Model files, safetensors, config and tokenizers: round trips and clear errors on bad input."""
import json
import struct

import numpy as np
import pytest
import torch

from conftest import CLS_CONFIGS, LM_CONFIGS, make_inputs, make_model
from longvq_ref import safetensors_io
from longvq_ref.config import Config, ConfigError
from longvq_ref.export import ModelFileError, load_model, save_model
from longvq_ref.safetensors_io import SafetensorsError
from longvq_ref.tokenizer import Tokenizer, TokenizerError


def test_safetensors_round_trip_all_dtypes(tmp_path):
    arrays = {"f64": np.random.randn(3, 2), "f32": np.random.randn(5).astype(np.float32),
              "f16": np.random.randn(2, 2).astype(np.float16), "i64": np.arange(7),
              "i32": np.arange(6, dtype=np.int32).reshape(2, 3), "u8": np.arange(4, dtype=np.uint8),
              "empty": np.zeros((0, 3), dtype=np.float32)}
    safetensors_io.write(tmp_path / "t.safetensors", arrays, {"k": "v"})
    back, meta = safetensors_io.read(tmp_path / "t.safetensors")
    assert meta == {"k": "v"}
    for name, a in arrays.items():
        assert back[name].dtype == a.dtype and np.array_equal(back[name], a), name
    blob = (tmp_path / "t.safetensors").read_bytes()
    header_len = struct.unpack("<Q", blob[:8])[0]
    assert header_len % 8 == 0, "data area must start 8-aligned for mmap"


def test_bf16_rounds_to_nearest_even(tmp_path):
    x = np.array([1.0, 1.00390625, 1.01171875, -3.14159, 65504.0, 1e-30], dtype=np.float32)
    safetensors_io.write(tmp_path / "b.safetensors", {"x": x}, bf16={"x"})
    back, _ = safetensors_io.read(tmp_path / "b.safetensors")
    assert np.array_equal(back["x"], torch.from_numpy(x).bfloat16().float().numpy())


def good_file(tmp_path):
    path = tmp_path / "g.safetensors"
    safetensors_io.write(path, {"a": np.ones((2, 3), np.float32), "b": np.zeros(4, np.int32)})
    return path


def rewrite_header(path, mutate):
    blob = path.read_bytes()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    mutate(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + blob[8 + n:])


@pytest.mark.parametrize("breakage,message", [
    (lambda p: p.write_bytes(p.read_bytes()[:5]), "too short"),
    (lambda p: p.write_bytes(struct.pack("<Q", 1 << 40) + p.read_bytes()[8:]), "header length"),
    (lambda p: p.write_bytes(p.read_bytes()[:8] + b"{not json" + p.read_bytes()[17:]), "not valid JSON"),
    (lambda p: p.write_bytes(p.read_bytes()[:-4]), "outside the data area"),
    (lambda p: rewrite_header(p, lambda h: h["a"].update(dtype="Q7")), "unknown dtype 'Q7'"),
    (lambda p: rewrite_header(p, lambda h: h["a"].update(shape=[3, 3])), "needs 36 bytes"),
    (lambda p: rewrite_header(p, lambda h: h["b"].update(data_offsets=[8, 24])), "overlap"),
    (lambda p: rewrite_header(p, lambda h: h["a"].update(data_offsets=[0, 10 ** 9])), "outside the data area"),
    (lambda p: rewrite_header(p, lambda h: h["a"].pop("shape")), "exactly dtype, shape and data_offsets"),
    (lambda p: rewrite_header(p, lambda h: h["a"].update(shape=[2 ** 62, 4])), "needs 73786976294838206464 bytes"),
    (lambda p: rewrite_header(p, lambda h: h["a"].update(shape=[True, 6])), "bad shape"),
])
def test_safetensors_catalogue_of_broken_files(tmp_path, breakage, message):
    path = good_file(tmp_path)
    breakage(path)
    with pytest.raises(SafetensorsError, match=message):
        safetensors_io.read(path)


@pytest.mark.parametrize("name", list(LM_CONFIGS) + list(CLS_CONFIGS))
def test_model_directory_round_trip(tmp_path, name):
    cfg = (LM_CONFIGS.get(name) or CLS_CONFIGS[name])()
    model = make_model(cfg, dtype=torch.float32)
    save_model(model, tmp_path / "m")
    back = load_model(tmp_path / "m", dtype=torch.float32)
    assert back.cfg == cfg
    for (n1, t1), (n2, t2) in zip(model.state_dict().items(), back.state_dict().items()):
        assert n1 == n2 and torch.equal(t1, t2), n1
    x = make_inputs(cfg, 2, 9)
    assert torch.equal(model(x), back(x))


def test_model_directory_errors(tmp_path):
    cfg = LM_CONFIGS["layernorm_prenorm_tied"]()
    save_model(make_model(cfg, dtype=torch.float32), tmp_path / "m")
    arrays, meta = safetensors_io.read(tmp_path / "m" / "model.safetensors")

    def with_arrays(new):
        safetensors_io.write(tmp_path / "m" / "model.safetensors", new, meta)

    with_arrays({k: v for k, v in arrays.items() if k != "layers.1.mix.codebook"})
    with pytest.raises(ModelFileError, match="'layers.1.mix.codebook' .* is missing"):
        load_model(tmp_path / "m")
    with_arrays({**arrays, "lm_head.weight": np.zeros((29, 12), np.float32)})
    with pytest.raises(ModelFileError, match="unexpected tensor 'lm_head.weight'"):
        load_model(tmp_path / "m")
    with_arrays({**arrays, "layers.0.mix.rel_bias": np.zeros(7, np.float32)})
    with pytest.raises(ModelFileError, match="'layers.0.mix.rel_bias' has shape \\[7\\].*\\[4\\]"):
        load_model(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_model(tmp_path / "m")
    with pytest.raises(ModelFileError, match="no config.json"):
        load_model(tmp_path / "nothing")


@pytest.mark.parametrize("change,message", [
    ({"format_version": 2}, "format_version 2 is not supported"),
    ({"d_model": 0}, "d_model must be > 0"),
    ({"norm": "groupnorm"}, "unknown norm 'groupnorm'"),
    ({"task": "seq2seq"}, "unknown task"),
    ({"attention": {"codebook_size": 0, "window": 1}}, "codebook_size must be >= 1"),
    ({"attention": {"codebook_size": 4, "window": -1}}, "window must be >= 0"),
    ({"bidirectional": True}, "must be causal"),
    ({"vocab_size": 300}, "tokenizer.tokens lists 29 tokens"),
    ({"colour": "blue"}, "unknown config field"),
    ({"attention": {"codebook_size": 4, "window": 1, "stride": 2}}, "bad config section"),
])
def test_config_range_checks(change, message):
    raw = LM_CONFIGS["layernorm_prenorm_tied"]().to_dict()
    raw.update(change)
    with pytest.raises(ConfigError, match=message):
        Config.from_dict(raw)


def test_config_json_round_trip():
    for make in list(LM_CONFIGS.values()) + list(CLS_CONFIGS.values()):
        cfg = make()
        assert Config.from_dict(json.loads(cfg.to_json())) == cfg


def test_tokenizers():
    tb = Tokenizer.from_config(LM_CONFIGS["bigwindow_unquantized_bytes"]())
    ids = tb.encode("héllo")
    assert ids == list("héllo".encode()) and tb.decode(ids) == "héllo".encode()
    assert tb.special_id("<bos>") == 256 and tb.decode([256]) == b"<bos>"
    tv = Tokenizer.from_config(LM_CONFIGS["layernorm_prenorm_tied"]())
    assert tv.encode(" w3  w0\nw28 ") == [3, 0, 28]
    with pytest.raises(TokenizerError, match="'w99' is not in the model's vocabulary"):
        tv.encode("w1 w99")
    tp = Tokenizer.from_config(CLS_CONFIGS["pixels_postnorm_unquantized"]())
    assert np.allclose(tp.encode_pixels([0, 255, 127.5]), [-1.0, 1.0, 0.0])


def test_export_convert_bf16_stores_only_weight_matrices_and_stays_close(tmp_path):
    from longvq_ref.export import _main as export_main
    src = tmp_path / "f32"
    model = make_model(LM_CONFIGS["layernorm_prenorm_tied"](), seed=3)
    save_model(model, src)
    assert export_main(["convert", str(src), "--out", str(tmp_path / "half"), "--bf16"]) == 0
    arrays, _ = safetensors_io.read(tmp_path / "half" / "model.safetensors")
    blob = (tmp_path / "half" / "model.safetensors").read_bytes()
    header = json.loads(blob[8:8 + struct.unpack("<Q", blob[:8])[0]])
    half = {n for n, v in header.items() if n != "__metadata__" and v["dtype"] == "BF16"}
    assert half and half == {n for n, a in arrays.items() if a.ndim == 2 and n.endswith(".weight")}
    assert "Storage" in (tmp_path / "half" / "README.md").read_text()
    inputs = make_inputs(model.cfg, batch=2, n=9, seed=4)
    a = load_model(src, dtype=torch.float64)(inputs)[0]
    b = load_model(tmp_path / "half", dtype=torch.float64)(inputs)[0]
    assert 0 < (a - b).abs().max() < 0.05 * max(1.0, a.abs().max().item())
    assert export_main(["convert", str(src), "--out", str(src), "--bf16"]) == 1  # refuses to overwrite its input


def test_int8_quantization_is_q8_0_with_exact_dequantization():
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((5, 70)) * 0.05).astype(np.float32)
    w[0, :32] = 0  # an all-zero block: scale 0, q 0
    w[1, 40] = 3.0  # one large weight: it sets its block's scale and is stored as ±127
    q, s = safetensors_io.quantize_int8(w)
    assert q.dtype == np.int8 and q.shape == (5, 70) and s.dtype == np.float16 and s.shape == (5, 3)
    assert s[0, 0] == 0 and not q[0, :32].any() and q[1, 40] == 127 and np.abs(q).max() <= 127
    d = safetensors_io.dequantize_int8(q, s)
    assert d.dtype == np.float32
    # exact: the f32 product equals the float64 product (8 x 11 significant bits)
    assert np.array_equal(d.astype(np.float64), q.astype(np.float64) * np.repeat(s.astype(np.float64), 32, 1)[:, :70])
    # error at most half a step of its block: |w - d| <= scale / 2 (+ the scale's f16 rounding)
    step = np.repeat(s.astype(np.float32), 32, 1)[:, :70]
    assert (np.abs(w - d) <= 0.5 * step * (1 + 2 ** -10) + 1e-12).all()
    with pytest.raises(SafetensorsError, match="F16 range"):
        safetensors_io.quantize_int8(np.full((1, 4), 1e7, np.float32))


def test_export_convert_int8_stores_matrices_and_scales_and_loads_dequantized(tmp_path):
    from longvq_ref.export import _main as export_main
    src = tmp_path / "f32"
    model = make_model(LM_CONFIGS["layernorm_prenorm_tied"](), seed=3)
    save_model(model, src)
    assert export_main(["convert", str(src), "--out", str(tmp_path / "q8"), "--int8"]) == 0
    blob = (tmp_path / "q8" / "model.safetensors").read_bytes()
    header = json.loads(blob[8:8 + struct.unpack("<Q", blob[:8])[0]])
    f32_arrays, _ = safetensors_io.read(src / "model.safetensors")
    matrices = {n for n, a in f32_arrays.items() if a.ndim == 2 and n.endswith(".weight")}
    assert matrices and {n for n, v in header.items() if n != "__metadata__" and v["dtype"] == "I8"} == matrices
    for n in matrices:
        out, inp = f32_arrays[n].shape
        assert header[n + "_scales"]["dtype"] == "F16" and header[n + "_scales"]["shape"] == [out, -(-inp // 32)]
    assert "q8_0" in header["__metadata__"]["int8_matrices"]
    assert "int8" in (tmp_path / "q8" / "README.md").read_text()
    # the reference of an int8 model is the f32 model of its dequantized weights
    arrays, _ = safetensors_io.read(tmp_path / "q8" / "model.safetensors")
    q8 = load_model(tmp_path / "q8", dtype=torch.float32)
    for n in matrices:
        want = safetensors_io.dequantize_int8(arrays[n], arrays[n + "_scales"])
        assert np.array_equal(q8.state_dict()[n].numpy(), want), n
    inputs = make_inputs(model.cfg, batch=2, n=9, seed=4)
    a = load_model(src, dtype=torch.float64)(inputs)[0]
    b = load_model(tmp_path / "q8", dtype=torch.float64)(inputs)[0]
    assert 0 < (a - b).abs().max() < 0.05 * max(1.0, a.abs().max().item())
    with pytest.raises(SystemExit):  # --int8 and --bf16 exclude each other
        export_main(["convert", str(src), "--out", str(tmp_path / "x"), "--int8", "--bf16"])


def test_int8_model_files_refuse_broken_scales(tmp_path):
    src = tmp_path / "f32"
    model = make_model(LM_CONFIGS["layernorm_prenorm_tied"](), seed=3)
    save_model(model, src, int8=True)
    arrays, meta = safetensors_io.read(src / "model.safetensors")
    name = "layers.0.mix.v_proj.weight"

    def broken(edit, match):
        d = tmp_path / "broken"
        d.mkdir(exist_ok=True)
        (d / "config.json").write_text((src / "config.json").read_text())
        a = dict(arrays)
        edit(a)
        safetensors_io.write(d / "model.safetensors", a, meta)
        with pytest.raises(ModelFileError, match=match):
            load_model(d)

    broken(lambda a: a.pop(name + "_scales"), f"'{name}_scales' is missing")
    broken(lambda a: a.__setitem__(name + "_scales", a[name + "_scales"].astype(np.float32)), "must be F16")
    broken(lambda a: a.__setitem__(name + "_scales", a[name + "_scales"][:, :0]), "must be F16")
    broken(lambda a: a.__setitem__("layers.0.mix.v_proj.bias", np.zeros(a["layers.0.mix.v_proj.bias"].shape,
                                                                         np.int8)), "only the 2-D")
    broken(lambda a: a.__setitem__("layers.0.mix.codebook_scales", np.zeros(1, np.float16)), "unexpected tensor")
