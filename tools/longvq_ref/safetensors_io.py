"""Reading and writing safetensors files with numpy + json (no safetensors package in Debian).

Layout: u64 little-endian header length H, H bytes of JSON (padded with spaces to a multiple
of 8), then the raw little-endian data. The JSON maps each tensor name to
{"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data area) and may
hold "__metadata__": {str: str}. The reader validates everything the C++ loader validates.
"""
from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np

# dtype name → (numpy storage dtype, bytes per element). BF16 is stored as raw uint16.
DTYPES = {
    "F64": (np.dtype("<f8"), 8), "F32": (np.dtype("<f4"), 4), "F16": (np.dtype("<f2"), 2),
    "BF16": (np.dtype("<u2"), 2), "I64": (np.dtype("<i8"), 8), "I32": (np.dtype("<i4"), 4),
    "I8": (np.dtype("i1"), 1), "U8": (np.dtype("u1"), 1),
}
_NUMPY_TO_NAME = {np.dtype("float64"): "F64", np.dtype("float32"): "F32", np.dtype("float16"): "F16",
                  np.dtype("int64"): "I64", np.dtype("int32"): "I32", np.dtype("int8"): "I8",
                  np.dtype("uint8"): "U8"}
# int8 weight matrices (docs/file-formats.md §2): NAME I8 [out, in] + NAME_scales F16 [out, ceil(in/32)].
INT8_BLOCK = 32
INT8_SCALES_SUFFIX = "_scales"
MAX_HEADER_BYTES = 100 * 1024 * 1024


class SafetensorsError(ValueError):
    """A file that is not a valid safetensors file; the message names the file and the problem."""


def bf16_to_f32(raw_u16: np.ndarray) -> np.ndarray:
    return (raw_u16.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(x: np.ndarray) -> np.ndarray:
    """Round to nearest even, as torch does."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + 0x7FFF
    return ((bits + rounding) >> 16).astype(np.uint16)


def quantize_int8(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A matrix [out, in] as int8 values and F16 scales [out, ceil(in/32)] (llama.cpp's Q8_0 with
    a shorter last block): per block of 32 inputs of a row, scale = f16(max|w| / 127) (f32 division,
    rounded to nearest f16), q = round-half-even(w / scale) clipped to ±127 (0 where the scale is 0).
    Dequantized: float32(q) · float32(scale), exact in f32 (8 × 11 significant bits)."""
    w = np.ascontiguousarray(w, dtype=np.float32)
    if w.ndim != 2:
        raise SafetensorsError(f"int8 quantization takes a matrix, not shape {list(w.shape)}")
    if not np.isfinite(w).all():
        raise SafetensorsError("int8 quantization of a matrix holding NaN or infinity")
    rows, cols = w.shape
    nb = -(-cols // INT8_BLOCK)
    padded = np.zeros((rows, nb * INT8_BLOCK), dtype=np.float32)
    padded[:, :cols] = w
    blocks = padded.reshape(rows, nb, INT8_BLOCK)
    amax = np.abs(blocks).max(axis=2) if cols else np.zeros((rows, 0), np.float32)
    with np.errstate(over="ignore"):
        scales = (amax / np.float32(127)).astype(np.float16)
    if not np.isfinite(scales).all():
        raise SafetensorsError("int8 quantization: a block's max |w| / 127 exceeds the F16 range (65504)")
    s32 = scales.astype(np.float32)[:, :, None]
    safe = np.where(s32 > 0, s32, np.float32(1))
    q = np.where(s32 > 0, np.clip(np.rint(blocks / safe), -127, 127), 0).astype(np.int8)
    return np.ascontiguousarray(q.reshape(rows, nb * INT8_BLOCK)[:, :cols]), scales


def dequantize_int8(q: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """float32(q) · float32(scale of its block): the exact values an int8 matrix stands for."""
    rows, cols = q.shape
    s = np.repeat(scales.astype(np.float32), INT8_BLOCK, axis=1)[:, :cols]
    return q.astype(np.float32) * s


def write(path: str | Path, tensors: dict, metadata: dict | None = None, bf16: set | None = None,
          data_crc32_key: str | None = None, int8: set | None = None) -> None:
    """Writes `tensors` (name → numpy array). Names in `bf16` are stored as BF16 from float32;
    names in `int8` (matrices) as I8 plus NAME_scales F16 (quantize_int8).
    With `data_crc32_key`, the metadata also gets that entry: zlib.crc32 of the whole data area
    as 8 lowercase hex digits (state files, docs/file-formats.md §3)."""
    bf16 = bf16 or set()
    int8 = int8 or set()
    entries = []
    tensors = dict(tensors)
    for name in int8:
        q, scales = quantize_int8(tensors[name])
        if name + INT8_SCALES_SUFFIX in tensors:
            raise SafetensorsError(f"tensor '{name}{INT8_SCALES_SUFFIX}' would hold the scales of '{name}'")
        tensors[name], tensors[name + INT8_SCALES_SUFFIX] = q, scales
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        if name in bf16:
            dtype_name, data = "BF16", f32_to_bf16(arr.astype(np.float32))
        else:
            if arr.dtype not in _NUMPY_TO_NAME:
                raise SafetensorsError(f"tensor '{name}': numpy dtype {arr.dtype} has no safetensors name")
            dtype_name, data = _NUMPY_TO_NAME[arr.dtype], arr.astype(arr.dtype.newbyteorder("<"))
        entries.append((name, dtype_name, list(arr.shape), data.tobytes()))
    # Larger elements first keeps every tensor naturally aligned in an 8-aligned data area.
    entries.sort(key=lambda e: (-DTYPES[e[1]][1], e[0]))
    header, offset = {}, 0
    metadata = dict(metadata or {})
    if data_crc32_key:
        crc = 0
        for entry in entries:  # the data area is the tensors back to back, in this order
            crc = zlib.crc32(entry[3], crc)
        metadata[data_crc32_key] = f"{crc:08x}"
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, dtype_name, shape, blob in entries:
        header[name] = {"dtype": dtype_name, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:  # write then rename: no half-written file under the real name
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for entry in entries:
            f.write(entry[3])
    tmp.replace(path)


def read_header(blob: bytes, where: str):
    """Validates the header of a whole file `blob`; returns (entries, metadata, data_start)."""
    if len(blob) < 8:
        raise SafetensorsError(f"{where}: file is {len(blob)} bytes, too short for a safetensors "
                               f"header; the file is truncated, re-export or re-download it")
    (header_len,) = struct.unpack("<Q", blob[:8])
    if header_len > MAX_HEADER_BYTES or 8 + header_len > len(blob):
        raise SafetensorsError(f"{where}: header length {header_len} does not fit the file "
                               f"({len(blob)} bytes); the file is truncated or not safetensors")
    try:
        header = json.loads(blob[8:8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SafetensorsError(f"{where}: header is not valid JSON ({err}); the file is corrupt") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{where}: header is not a JSON object; the file is corrupt")
    metadata = header.pop("__metadata__", {}) or {}
    data_start = 8 + header_len
    data_len = len(blob) - data_start
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise SafetensorsError(f"{where}: tensor '{name}' needs exactly dtype, shape and data_offsets")
        if info["dtype"] not in DTYPES:
            raise SafetensorsError(f"{where}: tensor '{name}' has unknown dtype '{info['dtype']}' "
                                   f"(known: {', '.join(DTYPES)})")
        shape, offsets = info["shape"], info["data_offsets"]
        # bool is an int in Python; a dimension must be a real non-negative integer.
        if not (isinstance(shape, list) and all(type(s) is int and s >= 0 for s in shape)):
            raise SafetensorsError(f"{where}: tensor '{name}' has a bad shape {shape}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= data_len):
            raise SafetensorsError(f"{where}: tensor '{name}' has data_offsets {offsets} outside the data "
                                   f"area of {data_len} bytes; the file is truncated or corrupt")
        expected = math.prod(shape) * DTYPES[info["dtype"]][1]  # Python ints: no overflow
        if offsets[1] - offsets[0] != expected:
            raise SafetensorsError(f"{where}: tensor '{name}' of shape {shape} {info['dtype']} needs "
                                   f"{expected} bytes but its data_offsets span {offsets[1] - offsets[0]}")
        spans.append((offsets[0], offsets[1], name))
    spans.sort()
    for (b0, e0, n0), (b1, _, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise SafetensorsError(f"{where}: tensors '{n0}' and '{n1}' overlap in the data area; "
                                   f"the file is corrupt")
    return header, metadata, data_start


def data_crc32(path: str | Path) -> str:
    """zlib.crc32 of a file's data area (everything after the header), as 8 lowercase hex digits."""
    blob = Path(path).read_bytes()
    _, _, data_start = read_header(blob, str(path))
    return f"{zlib.crc32(blob[data_start:]):08x}"


def read(path: str | Path, bf16_as_f32: bool = True):
    """Returns ({name: numpy array}, metadata). BF16 is widened to float32 unless told not to."""
    path = Path(path)
    blob = path.read_bytes()
    header, metadata, data_start = read_header(blob, str(path))
    out = {}
    for name, info in header.items():
        np_dtype, _ = DTYPES[info["dtype"]]
        b, e = info["data_offsets"]
        arr = np.frombuffer(blob, dtype=np_dtype, count=(e - b) // np_dtype.itemsize,
                            offset=data_start + b).reshape(info["shape"])
        if info["dtype"] == "BF16" and bf16_as_f32:
            arr = bf16_to_f32(arr)
        out[name] = arr
    return out, metadata
