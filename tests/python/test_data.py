"""Tests of tools/longvq_data that need neither the full data sets nor the network."""
from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))  # conftest does this too; kept so the file also runs alone

from longvq_data import austen, bible, common, fashion, listops  # noqa: E402
from longvq_data.common import DataError  # noqa: E402

SLICES = REPO / "tests" / "data"


# ---------------------------------------------------------------- ListOps generator


@pytest.fixture(scope="module")
def samples():
    return listops.generate(40, seed=11)


def test_vocab_is_fixed():
    assert listops.VOCAB == ["[MAX", "[MIN", "[MED", "[SM", "]"] + [str(d) for d in range(10)]


def test_generated_examples_follow_the_rules(samples):
    assert len(samples) == 40
    for tokens, label in samples:
        assert 500 < len(tokens) < 2000
        assert set(tokens) <= set(listops.VOCAB)
        assert listops.depth(tokens) <= 10
        assert listops.evaluate(tokens) == label
        assert 0 <= label <= 9


def test_small_bounds_and_operator_arity():
    for tokens, label in listops.generate(200, seed=4, min_len=3, max_len=60):
        assert 3 < len(tokens) < 60
        assert listops.evaluate(tokens) == label
        # Every operator has 2–10 arguments: count direct children with a stack.
        counts = []
        for tok in tokens:
            if tok == "]":
                assert 2 <= counts.pop() <= 10
            else:
                if counts:
                    counts[-1] += 1
                if tok in listops.OPERATORS:
                    counts.append(0)


def test_generation_is_deterministic(samples):
    assert listops.generate(40, seed=11) == samples
    assert listops.generate(5, seed=12) != samples[:5]


def test_no_duplicates_with_exclude():
    seen = set()
    first = listops.generate(20, seed=7, min_len=3, max_len=30, exclude=seen)
    second = listops.generate(20, seed=7, min_len=3, max_len=30, exclude=seen)
    sources = [" ".join(t) for t, _ in first + second]
    assert len(set(sources)) == 40


@pytest.mark.parametrize("source,value", [
    ("[MED 1 2 3 4 ]", 2),       # median 2.5 -> int 2
    ("[MED 9 0 5 ]", 5),
    ("[MED 8 9 ]", 8),           # 8.5 -> 8
    ("[MED 3 3 7 7 ]", 5),
    ("[SM 9 8 7 ]", 4),          # 24 mod 10
    ("[SM 5 5 ]", 0),
    ("[MAX 1 [MIN 7 3 ] 2 ]", 3),
    ("[SM [MED 1 9 ] [MAX 0 6 ] 3 ]", 4),  # 5 + 6 + 3 = 14
    ("7", 7),
])
def test_evaluate_semantics(source, value):
    assert listops.evaluate(source.split()) == value


def test_generator_median_matches_numpy():
    rng = np.random.default_rng(0)
    for _ in range(500):
        args = [int(x) for x in rng.integers(0, 10, size=rng.integers(2, 11))]
        assert listops._apply("[MED", args) == int(np.median(args))
        assert listops._apply("[SM", args) == int(np.sum(args)) % 10


@pytest.mark.parametrize("source", ["[MAX 1 2", "1 ]", "[MAX ]", "1 2", "[FOO 1 2 ]"])
def test_evaluate_rejects_malformed(source):
    with pytest.raises(ValueError):
        listops.evaluate(source.split())


def test_tsv_roundtrip_and_bad_header(tmp_path):
    examples = listops.generate(3, seed=1, min_len=3, max_len=40)
    path = tmp_path / "x.tsv"
    listops._write_tsv(path, examples)
    assert listops.parse_tsv(path) == examples
    assert listops.parse_tsv(path, limit=2) == examples[:2]
    path.write_text("src\ttgt\n1\t1\n")
    with pytest.raises(DataError, match="header"):
        listops.parse_tsv(path)


def test_listops_slice_reevaluates():
    rows = listops.parse_tsv(SLICES / "listops_test200.tsv")
    assert len(rows) == 200
    for tokens, label in rows:
        assert 500 < len(tokens) < 2000
        assert listops.evaluate(tokens) == label


def test_generator_reproduces_the_committed_slice():
    # The test split is seed 3; any change to the generator's random stream shows up here.
    rows = listops.parse_tsv(SLICES / "listops_test200.tsv")
    assert listops.generate(200, seed=listops.SPLITS["test"][1]) == rows


# ---------------------------------------------------------------- IDX / Fashion-MNIST


def _tiny_idx():
    images = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3)
    labels = np.array([3, 9], dtype=np.uint8)
    image_bytes = struct.pack(">IIII", 0x803, 2, 2, 3) + images.tobytes()
    label_bytes = struct.pack(">II", 0x801, 2) + labels.tobytes()
    return images, labels, image_bytes, label_bytes


def test_read_idx_plain_and_gzip(tmp_path):
    images, labels, image_bytes, label_bytes = _tiny_idx()
    (tmp_path / "im").write_bytes(image_bytes)
    (tmp_path / "lb.gz").write_bytes(gzip.compress(label_bytes))
    np.testing.assert_array_equal(fashion.read_idx(tmp_path / "im"), images)
    np.testing.assert_array_equal(fashion.read_idx(tmp_path / "lb.gz"), labels)
    assert fashion.idx_bytes(images) == image_bytes
    assert fashion.idx_bytes(labels) == label_bytes


def test_read_idx_bad_magic(tmp_path):
    _, _, image_bytes, _ = _tiny_idx()
    path = tmp_path / "bad"
    path.write_bytes(struct.pack(">I", 0x0D03) + image_bytes[4:])
    with pytest.raises(DataError, match="bad IDX magic 0x00000d03"):
        fashion.read_idx(path)


@pytest.mark.parametrize("cut", [2, 10, 20])
def test_read_idx_truncated(tmp_path, cut):
    _, _, image_bytes, _ = _tiny_idx()
    path = tmp_path / "short"
    path.write_bytes(image_bytes[:cut])
    with pytest.raises(DataError, match="short|truncated"):
        fashion.read_idx(path)


def test_read_idx_trailing_bytes(tmp_path):
    _, _, _, label_bytes = _tiny_idx()
    path = tmp_path / "long"
    path.write_bytes(label_bytes + b"\0")
    with pytest.raises(DataError, match="trailing"):
        fashion.read_idx(path)


def test_fashion_slice():
    images = fashion.read_idx(SLICES / "fashion_test1000-images-idx3-ubyte")
    labels = fashion.read_idx(SLICES / "fashion_test1000-labels-idx1-ubyte")
    flat, labels = fashion.pair(images, labels)
    assert flat.shape == (1000, 784) and flat.dtype == np.uint8
    assert labels.shape == (1000,) and labels.dtype == np.int64
    assert labels.min() >= 0 and labels.max() <= 9
    assert len(np.unique(labels)) == 10
    assert flat.max() > 0


# ---------------------------------------------------------------- Austen split and DONE markers


def test_austen_split_is_per_book_and_ordered():
    books = {"A": [f"a{i}" for i in range(20)], "B": [f"b{i}" for i in range(40)]}
    texts = austen.split_books(books)
    assert texts["train"] == "\n".join([f"a{i}" for i in range(18)] + [f"b{i}" for i in range(36)])
    assert texts["val"] == "\n".join(["a18", "b36", "b37"])
    assert texts["test"] == "\n".join(["a19", "b38", "b39"])


def test_bible_text_drops_headings_and_verse_numbers():
    raw = ("\nGenesis 1\n\n  1 In the beginning God created the heaven and the earth.\n"
           "  2 And the earth was without form, and void; and darkness was upon the face of\n"
           "the deep.\n\n1 Kings 3\n\n  10 And the speech pleased the Lord, that Solomon had asked\n"
           "this thing.\n\nSong of Solomon 2\n\n  1 I am the rose of Sharon, and 12 lilies.\n")
    assert bible.clean(raw) == ("In the beginning God created the heaven and the earth.\n"
                                "And the earth was without form, and void; and darkness was upon the face of\n"
                                "the deep.\n\nAnd the speech pleased the Lord, that Solomon had asked\n"
                                "this thing.\n\nI am the rose of Sharon, and 12 lilies.")


def test_bible_has_only_a_training_split(tmp_path):
    with pytest.raises(ValueError, match="training text only"):
        bible.load("test", root=tmp_path)
    with pytest.raises(DataError, match="prepare bible"):
        bible.load("train", root=tmp_path)


def test_done_marker_detects_changes(tmp_path):
    (tmp_path / "f.txt").write_text("abc")
    params = {"x": 1}
    common.write_done(tmp_path, params, ["f.txt"], count=3)
    assert common.read_done(tmp_path, params)["count"] == 3
    assert common.read_done(tmp_path, {"x": 2}) is None
    (tmp_path / "f.txt").write_text("abcd")
    assert common.read_done(tmp_path, params) is None
