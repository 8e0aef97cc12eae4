"""Small committed slices for CI (tests/data): the first 200 ListOps test rows and the first 1,000
Fashion-MNIST test images/labels as plain IDX. Prepares the full sets first if needed."""
from __future__ import annotations

from pathlib import Path

from . import fashion, listops
from .common import REPO_ROOT, log

DEFAULT_OUT = REPO_ROOT / "tests" / "data"
LISTOPS_ROWS = 200
FASHION_ROWS = 1000
LISTOPS_FILE = f"listops_test{LISTOPS_ROWS}.tsv"
FASHION_IMAGES = f"fashion_test{FASHION_ROWS}-images-idx3-ubyte"
FASHION_LABELS = f"fashion_test{FASHION_ROWS}-labels-idx1-ubyte"


def make_slices(root=None, out=None) -> list:
    out = Path(out) if out is not None else DEFAULT_OUT
    out.mkdir(parents=True, exist_ok=True)
    listops.prepare(root)
    fashion.prepare(root)

    # Copy lines verbatim rather than re-serialising, so the slice is byte-identical to the split.
    with open(listops.split_path("test", root), encoding="utf-8") as src:
        lines = [src.readline() for _ in range(LISTOPS_ROWS + 1)]
    with open(out / LISTOPS_FILE, "w", encoding="utf-8", newline="\n") as dst:
        dst.writelines(lines)

    images, labels = fashion.load("test", root)
    fashion.write_idx(out / FASHION_IMAGES, images[:FASHION_ROWS].reshape(-1, fashion.ROWS, fashion.COLS))
    fashion.write_idx(out / FASHION_LABELS, labels[:FASHION_ROWS].astype("uint8"))

    written = [out / LISTOPS_FILE, out / FASHION_IMAGES, out / FASHION_LABELS]
    for path in written:
        log(f"wrote {path} ({path.stat().st_size} bytes)")
    return written
