"""The King James Bible from Debian's bible-kjv, as extra training text for the byte-level LM.

Training text only (issue 20: "a wider public-domain corpus ... with the Austen test split still
held out"): it has no validation or test split; models are scored on Austen's. The `bible` tool
prints each chapter under a heading ("Genesis 1") with numbered verses wrapped at 80 columns;
headings and verse numbers are dropped, the wrapped lines kept (as Austen's printed lines are).
File: data/bible/train.txt (UTF-8).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time

from .common import DataError, already_prepared, data_root, describe_sizes, ensure_apt_package, log, write_done

PACKAGE = "bible-kjv"
RANGE = "gen1:1-rev22:21"
PARAMS = {"version": 1, "source": PACKAGE, "range": RANGE}
_HEADING = re.compile(r"^(?:[1-3] )?[A-Z][A-Za-z ]+ \d+$")  # "Genesis 1", "1 Kings 3", "Song of Solomon 2"
_VERSE = re.compile(r"^\s+\d+ ")


def clean(raw: str) -> str:
    """The tool's output → the verses' text, one printed line per line, chapters separated by a blank line."""
    out = []
    for line in raw.split("\n"):
        if _HEADING.match(line):
            if out and out[-1] != "":
                out.append("")
            continue
        if not line.strip():
            continue
        out.append(_VERSE.sub("", line).rstrip())
    return "\n".join(out).strip("\n")


def prepare(root=None) -> dict:
    out_dir = data_root(root) / "bible"
    if (done := already_prepared("bible", out_dir, PARAMS)) is not None:
        return done
    ensure_apt_package(PACKAGE)
    tool = shutil.which("bible")
    if tool is None:
        raise DataError("the `bible` tool is missing although bible-kjv is installed; run:\n"
                        "  sudo apt-get install --reinstall -y bible-kjv")
    start = time.monotonic()
    result = subprocess.run([tool, RANGE], capture_output=True, check=False)
    if result.returncode != 0 or not result.stdout:
        raise DataError(f"`bible {RANGE}` failed (exit {result.returncode}): {result.stderr.decode(errors='replace')}")
    text = clean(result.stdout.decode("utf-8"))
    if len(text) < 3_000_000:
        raise DataError(f"`bible {RANGE}` gave only {len(text):,} characters of text (expected about 4 MB)")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "train.txt").write_bytes(text.encode("utf-8"))
    done = write_done(out_dir, PARAMS, ["train.txt"], seconds=round(time.monotonic() - start, 1))
    log(f"bible: wrote {out_dir} ({describe_sizes(done)})")
    return done


def load(split: str = "train", root=None) -> bytes:
    if split != "train":
        raise ValueError(f"the bible is training text only; there is no {split!r} split (score on Austen's)")
    path = data_root(root) / "bible" / "train.txt"
    if not path.is_file():
        raise DataError(f"{path} is missing; run: cd tools && /usr/bin/python3 -m longvq_data prepare bible")
    return path.read_bytes()
