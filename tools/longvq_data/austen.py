"""Jane Austen's six novels, from Debian's r-cran-janeaustenr (one row per printed line, with its book).

Each book is split by position: its first 90% of lines go to train, the next 5% to val, the last
5% to test; each split is then the books in janeaustenr's order, all lines joined with "\\n".
Files: data/austen/{train,val,test}.txt (UTF-8).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .common import DataError, already_prepared, data_root, describe_sizes, ensure_apt_package, log, write_done

PACKAGE = "r-cran-janeaustenr"
SPLITS = ("train", "val", "test")
TRAIN_PCT, VAL_PCT = 90, 5
PARAMS = {"version": 1, "source": PACKAGE, "train_pct": TRAIN_PCT, "val_pct": VAL_PCT}

# Book first, so the first tab separates it from the text whatever the text holds; useBytes and
# enc2utf8 keep R from rewriting non-ASCII characters as <U+00E9> under a C locale.
R_SCRIPT = r'''
library(janeaustenr)
b <- austen_books()
con <- file(commandArgs(TRUE)[1], open = "wb")
writeLines(paste(as.character(b$book), enc2utf8(b$text), sep = "\t"), con, useBytes = TRUE)
close(con)
cat(nrow(b), "\n")
'''


def _extract_lines(path: Path) -> None:
    ensure_apt_package(PACKAGE)
    rscript = shutil.which("Rscript")
    if rscript is None:
        raise DataError("Rscript not found although r-cran-janeaustenr is installed; run:\n"
                        "  sudo apt-get install -y --no-install-recommends r-base-core")
    env = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")
    result = subprocess.run([rscript, "-e", R_SCRIPT, str(path)], capture_output=True, text=True,
                            env=env, check=False)
    if result.returncode != 0:
        raise DataError(f"Rscript failed extracting janeaustenr:\n{result.stderr}")
    expected_rows = int(result.stdout.split()[-1])
    rows = path.read_bytes().decode("utf-8").count("\n")
    if rows != expected_rows:
        raise DataError(f"janeaustenr has {expected_rows} rows but {rows} lines were written (embedded newline?)")


def split_books(books: dict) -> dict:
    """{book: [lines]} in order -> {split: text}, splitting each book at 90% / 95% of its lines."""
    parts = {s: [] for s in SPLITS}
    for lines in books.values():
        n = len(lines)
        train_end, val_end = n * TRAIN_PCT // 100, n * (TRAIN_PCT + VAL_PCT) // 100
        parts["train"] += lines[:train_end]
        parts["val"] += lines[train_end:val_end]
        parts["test"] += lines[val_end:]
    return {s: "\n".join(lines) for s, lines in parts.items()}


def read_books(path: Path) -> dict:
    books = {}
    for line in path.read_bytes().decode("utf-8").split("\n")[:-1]:
        book, text = line.split("\t", 1)
        books.setdefault(book, []).append(text)
    return books


def load(split: str, root=None) -> bytes:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    path = data_root(root) / "austen" / f"{split}.txt"
    if not path.is_file():
        raise DataError(f"{path} is missing; run: cd tools && /usr/bin/python3 -m longvq_data prepare austen")
    return path.read_bytes()


def prepare(root=None) -> dict:
    out_dir = data_root(root) / "austen"
    if (done := already_prepared("austen", out_dir, PARAMS)) is not None:
        return done
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        lines_path = Path(tmp) / "austen_books.tsv"
        _extract_lines(lines_path)
        books = read_books(lines_path)
    if len(books) != 6:
        raise DataError(f"expected 6 novels from janeaustenr, got {list(books)}")
    texts = split_books(books)
    for split, text in texts.items():
        (out_dir / f"{split}.txt").write_bytes(text.encode("utf-8"))
    done = write_done(out_dir, PARAMS, [f"{s}.txt" for s in SPLITS],
                      books={b: len(lines) for b, lines in books.items()},
                      lines={s: text.count("\n") + 1 for s, text in texts.items()},
                      seconds=round(time.monotonic() - start, 1))
    log(f"austen: wrote {out_dir} in {done['seconds']:.0f}s ({describe_sizes(done)}); lines per book {done['books']}")
    return done
