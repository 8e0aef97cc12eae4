"""ListOps with the Long Range Arena rules (Tay et al. 2020, after Nangia & Bowman 2018).

A tree is a digit 0–9 or `[OP arg ... ]` with 2–10 arguments. Starting at depth 1, a node below
depth 10 is an operator with probability 0.25, else a digit; at depth 10 it is always a digit, so
brackets nest at most 9 deep. MAX/MIN as named, MED = int(numpy median), SM = sum mod 10. The value
of the tree is the label. Only trees with 500 < tokens < 2000 are kept (rejection sampling).

Files: data/listops/{train,val,test}.tsv with header `Source\\tTarget`, Source = space-separated
tokens, Target = label. Splits 96,000 / 2,000 / 2,000 from seeds 1 / 2 / 3; a sequence already
in an earlier split (train, then val, then test) is skipped, so splits never share a sequence.
"""
from __future__ import annotations

import hashlib
import random
import time
from pathlib import Path

import numpy as np

from .common import DataError, Progress, already_prepared, data_root, describe_sizes, log, write_done

OPERATORS = ["[MAX", "[MIN", "[MED", "[SM"]
END = "]"
DIGITS = [str(d) for d in range(10)]
VOCAB = OPERATORS + [END] + DIGITS

MAX_DEPTH = 10
MAX_ARGS = 10
OPERATOR_P = 0.25
MIN_LEN = 500
MAX_LEN = 2000
SPLITS = {"train": (96_000, 1), "val": (2_000, 2), "test": (2_000, 3)}  # name: (count, seed)
HEADER = "Source\tTarget"
PARAMS = {"version": 1, "splits": SPLITS, "min_len": MIN_LEN, "max_len": MAX_LEN, "max_depth": MAX_DEPTH,
          "max_args": MAX_ARGS, "operator_p": OPERATOR_P}


class _TooLong(Exception):
    pass


def _apply(op: str, args: list) -> int:
    if op == "[MAX":
        return max(args)
    if op == "[MIN":
        return min(args)
    if op == "[SM":
        return sum(args) % 10
    # int(np.median(args)) in integers: the mean of the two middle values is ≥ 0, so int() floors it.
    s = sorted(args)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) // 2


def _sample(rand, max_len: int):
    """One tree as (tokens, value), or None once it reaches max_len tokens (we stop drawing there).

    Only rand() is used (no randint/choice), so the stream is the Mersenne Twister's alone and
    stays identical across Python versions.
    """
    tokens = []
    append = tokens.append

    def node(depth):
        if len(tokens) >= max_len:
            raise _TooLong
        if depth < MAX_DEPTH and rand() <= OPERATOR_P:
            op = OPERATORS[int(rand() * 4)]
            n_args = 2 + int(rand() * (MAX_ARGS - 1))
            append(op)
            args = [node(depth + 1) for _ in range(n_args)]
            append(END)
            return _apply(op, args)
        d = int(rand() * 10)
        append(DIGITS[d])
        return d

    try:
        value = node(1)
    except _TooLong:
        return None
    return tokens, value


def _digest(source: str) -> bytes:
    return hashlib.blake2b(source.encode(), digest_size=16).digest()


def generate(n: int, seed: int, min_len: int = MIN_LEN, max_len: int = MAX_LEN, exclude=None,
             progress: Progress = None) -> list:
    """n examples (tokens, label) with min_len < len(tokens) < max_len, deterministic in seed.

    Duplicates within the call, and sequences whose digest is in `exclude` (a set of _digest
    values, extended in place), are skipped.
    """
    rand = random.Random(seed).random
    seen = exclude if exclude is not None else set()
    out = []
    while len(out) < n:
        sample = _sample(rand, max_len)
        if sample is None or not min_len < len(sample[0]) < max_len:
            continue
        digest = _digest(" ".join(sample[0]))
        if digest in seen:
            continue
        seen.add(digest)
        out.append(sample)
        if progress is not None:
            progress.update(len(out))
    return out


def evaluate(tokens) -> int:
    """The label of a token list, computed independently of the generator (numpy median)."""
    stack = [[]]  # stack[-1] collects the argument values of the innermost open operator
    ops = []
    for tok in tokens:
        if tok in OPERATORS:
            ops.append(tok)
            stack.append([])
        elif tok == END:
            if not ops:
                raise ValueError("unmatched ']'")
            op, args = ops.pop(), stack.pop()
            if len(args) < 1:
                raise ValueError(f"{op} has no arguments")
            if op == "[MAX":
                value = max(args)
            elif op == "[MIN":
                value = min(args)
            elif op == "[MED":
                value = int(np.median(args))
            else:
                value = int(np.sum(args)) % 10
            stack[-1].append(value)
        elif tok in DIGITS:
            stack[-1].append(int(tok))
        else:
            raise ValueError(f"unknown token {tok!r}")
    if ops or len(stack[0]) != 1:
        raise ValueError("not a single well-formed tree")
    return stack[0][0]


def depth(tokens) -> int:
    """Tree depth counting the digit level: a lone digit is 1, `[MAX 1 2 ]` is 2."""
    level = best = 0
    for tok in tokens:
        if tok == END:
            level -= 1
        elif tok in OPERATORS:
            level += 1
        else:
            best = max(best, level + 1)
    return best


def _write_tsv(path: Path, examples) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(HEADER + "\n")
        for tokens, label in examples:
            f.write(f"{' '.join(tokens)}\t{label}\n")


def parse_tsv(path, limit=None) -> list:
    """[(tokens, label)] from a Source/Target TSV; raises DataError on a malformed line."""
    path = Path(path)
    out = []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n")
        if header != HEADER:
            raise DataError(f"{path}: header is {header!r}, expected {HEADER!r}")
        for lineno, line in enumerate(f, start=2):
            if limit is not None and len(out) >= limit:
                break
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 2 or not parts[1].isdigit():
                raise DataError(f"{path}:{lineno}: expected 'tokens<TAB>label'")
            out.append((parts[0].split(), int(parts[1])))
    return out


def split_path(split: str, root=None) -> Path:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    return data_root(root) / "listops" / f"{split}.tsv"


def load(split: str, root=None, limit=None) -> list:
    path = split_path(split, root)
    if not path.is_file():
        raise DataError(f"{path} is missing; run: cd tools && /usr/bin/python3 -m longvq_data prepare listops")
    return parse_tsv(path, limit)


def label_counts(examples) -> list:
    counts = [0] * 10
    for _, label in examples:
        counts[label] += 1
    return counts


def prepare(root=None) -> dict:
    out_dir = data_root(root) / "listops"
    if (done := already_prepared("listops", out_dir, PARAMS)) is not None:
        return done
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    seen = set()
    stats = {}
    for split, (count, seed) in SPLITS.items():
        examples = generate(count, seed, exclude=seen, progress=Progress(f"listops {split}", count, 5000))
        _write_tsv(out_dir / f"{split}.tsv", examples)
        counts = label_counts(examples)
        lengths = [len(t) for t, _ in examples]
        stats[split] = {"count": count, "labels": counts, "majority_share": max(counts) / count,
                        "mean_len": sum(lengths) / count, "min_len": min(lengths), "max_len": max(lengths)}
        log(f"listops {split}: {count} examples, labels {counts}, majority share "
            f"{max(counts) / count:.4f}, tokens {min(lengths)}..{max(lengths)} (mean {sum(lengths) / count:.0f})")
    done = write_done(out_dir, PARAMS, [f"{s}.tsv" for s in SPLITS], stats=stats,
                      seconds=round(time.monotonic() - start, 1))
    log(f"listops: wrote {out_dir} in {done['seconds']:.0f}s ({describe_sizes(done)})")
    return done
