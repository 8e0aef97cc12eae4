"""Fashion-MNIST from Debian's dataset-fashion-mnist, unpacked to plain IDX files in data/fashion.

Splits: train = the first 55,000 images of the training file, val = its last 5,000, test = the
10,000 t10k images. The files stay in IDX so the C++ engine reads the same bytes as Python.
"""
from __future__ import annotations

import gzip
import hashlib
import struct
import time
from pathlib import Path

import numpy as np

from .common import DataError, already_prepared, data_root, describe_sizes, ensure_apt_package, log, write_done

PACKAGE = "dataset-fashion-mnist"
SOURCE_DIR = Path("/usr/share/datasets/fashion-mnist")
IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
ROWS = COLS = 28
N_TRAIN_FILE, N_VAL = 60_000, 5_000
N_TEST = 10_000
FILES = {  # our name: (package file, expected count)
    "train-images-idx3-ubyte": ("train-images-idx3-ubyte.gz", N_TRAIN_FILE),
    "train-labels-idx1-ubyte": ("train-labels-idx1-ubyte.gz", N_TRAIN_FILE),
    "t10k-images-idx3-ubyte": ("t10k-images-idx3-ubyte.gz", N_TEST),
    "t10k-labels-idx1-ubyte": ("t10k-labels-idx1-ubyte.gz", N_TEST),
}
SPLITS = ("train", "val", "test")
PARAMS = {"version": 1, "source": PACKAGE, "files": sorted(FILES)}


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """An IDX byte string (unsigned-byte type only) as a uint8 array of its declared shape."""
    if len(data) < 4:
        raise DataError(f"{name}: {len(data)} bytes is too short for an IDX header")
    magic = struct.unpack(">I", data[:4])[0]
    if magic not in (IMAGES_MAGIC, LABELS_MAGIC):
        raise DataError(f"{name}: bad IDX magic 0x{magic:08x}; expected 0x{IMAGES_MAGIC:08x} (images) "
                        f"or 0x{LABELS_MAGIC:08x} (labels)")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: truncated header ({len(data)} bytes, need {header})")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataError(f"{name}: {kind}: {len(data)} bytes, dims {list(dims)} need {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_idx(path) -> np.ndarray:
    """Reads an IDX file, gzip-compressed (by magic bytes, not name) or plain."""
    path = Path(path)
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise DataError(f"{path}: corrupt gzip: {e}") from e
    return parse_idx(data, str(path))


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array with 1 (labels) or 3 (images) dimensions."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    if array.ndim not in (1, 3):
        raise ValueError(f"IDX writer handles 1 or 3 dimensions, got {array.shape}")
    magic = LABELS_MAGIC if array.ndim == 1 else IMAGES_MAGIC
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()


def write_idx(path, array: np.ndarray) -> None:
    Path(path).write_bytes(idx_bytes(array))


def _check(name: str, array: np.ndarray, count: int) -> None:
    want = (count, ROWS, COLS) if "images" in name else (count,)
    if array.shape != want:
        raise DataError(f"{name}: shape {array.shape}, expected {want}")
    if "labels" in name and array.max(initial=0) > 9:
        raise DataError(f"{name}: label {array.max()} outside 0..9")


def pair(images: np.ndarray, labels: np.ndarray):
    if images.ndim != 3 or images.shape[1:] != (ROWS, COLS) or labels.shape != images.shape[:1]:
        raise DataError(f"images {images.shape} and labels {labels.shape} do not match")
    return images.reshape(len(images), ROWS * COLS), labels.astype(np.int64)


def load(split: str, root=None):
    """(images uint8 [n, 784], labels int64 [n]) of one split."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    directory = data_root(root) / "fashion"
    prefix = "t10k" if split == "test" else "train"
    paths = [directory / f"{prefix}-images-idx3-ubyte", directory / f"{prefix}-labels-idx1-ubyte"]
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path} is missing; run: cd tools && /usr/bin/python3 -m longvq_data prepare fashion")
    images, labels = pair(read_idx(paths[0]), read_idx(paths[1]))
    if split == "train":
        return images[:N_TRAIN_FILE - N_VAL], labels[:N_TRAIN_FILE - N_VAL]
    if split == "val":
        return images[N_TRAIN_FILE - N_VAL:], labels[N_TRAIN_FILE - N_VAL:]
    return images, labels


def prepare(root=None) -> dict:
    out_dir = data_root(root) / "fashion"
    if (done := already_prepared("fashion", out_dir, PARAMS)) is not None:
        return done
    start = time.monotonic()
    if not all((SOURCE_DIR / src).is_file() for src, _ in FILES.values()):
        ensure_apt_package(PACKAGE)
    out_dir.mkdir(parents=True, exist_ok=True)
    sha256 = {}
    for name, (src, count) in FILES.items():
        path = SOURCE_DIR / src
        if not path.is_file():
            raise DataError(f"{path} is missing although {PACKAGE} is installed; run:\n"
                            f"  sudo apt-get install --reinstall {PACKAGE}")
        array = read_idx(path)
        _check(name, array, count)
        data = idx_bytes(array)
        (out_dir / name).write_bytes(data)
        sha256[name] = hashlib.sha256(data).hexdigest()
    counts = {"train": N_TRAIN_FILE - N_VAL, "val": N_VAL, "test": N_TEST}
    done = write_done(out_dir, PARAMS, list(FILES), counts=counts, sha256=sha256,
                      seconds=round(time.monotonic() - start, 1))
    log(f"fashion: wrote {out_dir} in {done['seconds']:.0f}s ({describe_sizes(done)})")
    return done
