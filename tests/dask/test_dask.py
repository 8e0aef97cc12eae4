"""python3 -m longvq.dask on a real scheduler and two real workers: the output equals the CLI's,
a worker killed with SIGKILL mid-job loses no row and duplicates none, a bad input line fails
the job naming the line (no hang), and the bag / dataframe API agrees with the CLI."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import PY, ROOT, cli

LISTOPS = ROOT / "models" / "listops"
TINY = ROOT / "tests" / "fixtures" / "cls_batchnorm_tokens"


def listops_jsonl(path: pathlib.Path, copies: int) -> None:
    """The committed ListOps slice as JSONL with ids and a field of the user's, `copies` times."""
    lines = (ROOT / "tests" / "data" / "listops_test200.tsv").read_text().splitlines()[1:]
    with open(path, "w") as f:
        for c in range(copies):
            for i, line in enumerate(lines):
                text, label = line.split("\t")
                f.write(json.dumps({"id": f"c{c}-{i}", "text": text, "label": int(label), "copy": c}) + "\n")
                if i == 50:
                    f.write("\n")  # a blank line: skipped, not counted, by both


def run_cli(*args) -> bytes:
    r = subprocess.run([cli(), *map(str, args)], capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def dask_classify(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "longvq.dask", "classify", *map(str, args)], capture_output=True,
                          timeout=timeout, text=True)


def test_output_equals_the_cli(cluster, tmp_path):
    listops_jsonl(tmp_path / "in.jsonl", 1)
    want = run_cli("classify", "-m", LISTOPS, tmp_path / "in.jsonl", "-t", "1", "--logits")
    r = dask_classify("-m", LISTOPS, tmp_path / "in.jsonl", "-o", tmp_path / "out.jsonl", "--scheduler",
                      cluster.address, "--partition-lines", "37", "--logits")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.jsonl").read_bytes() == want
    assert not (tmp_path / "out.jsonl.parts").exists()
    assert "on 2 workers" in r.stderr


def test_a_worker_killed_mid_job_loses_and_duplicates_nothing(cluster, tmp_path):
    listops_jsonl(tmp_path / "in.jsonl", 6)  # ~6 s of work for one worker
    want = run_cli("classify", "-m", LISTOPS, tmp_path / "in.jsonl", "-t", "1")
    job = subprocess.Popen([PY, "-m", "longvq.dask", "classify", "-m", str(LISTOPS), str(tmp_path / "in.jsonl"),
                            "-o", str(tmp_path / "out.jsonl"), "--scheduler", cluster.address,
                            "--partition-lines", "20"], stderr=subprocess.PIPE, text=True)
    parts = tmp_path / "out.jsonl.parts"
    deadline = time.monotonic() + 60
    while not (parts.exists() and len(list(parts.iterdir())) >= 3):  # mid-job: some partitions done
        assert job.poll() is None and time.monotonic() < deadline, "the job ended before the kill"
        time.sleep(0.02)
    cluster.workers[0].send_signal(signal.SIGKILL)
    _, err = job.communicate(timeout=240)
    assert job.returncode == 0, err
    assert cluster.workers[0].wait() == -signal.SIGKILL
    assert (tmp_path / "out.jsonl").read_bytes() == want  # every row exactly once, in order
    assert "on 1 workers" in err


def test_a_bad_line_fails_the_job_naming_it(cluster, tmp_path):
    lines = [json.dumps({"tokens": [1, 2, 3], "id": i}) for i in range(500)]
    lines[321] = '{"tokens": [1, 99]}'
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    t0 = time.monotonic()
    r = dask_classify("-m", TINY, tmp_path / "in.jsonl", "-o", tmp_path / "out.jsonl", "--scheduler",
                      cluster.address, "--partition-lines", "50", timeout=120)
    assert r.returncode == 1
    assert "in.jsonl:322: token id 99" in r.stderr
    assert not (tmp_path / "out.jsonl").exists()
    assert time.monotonic() - t0 < 60
    # Fixed, the job continues from the partitions already written.
    lines[321] = '{"tokens": [1, 9], "id": 321}'
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    r = dask_classify("-m", TINY, tmp_path / "in.jsonl", "-o", tmp_path / "out.jsonl", "--scheduler",
                      cluster.address, "--partition-lines", "50", "--resume")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.jsonl").read_bytes() == run_cli("classify", "-m", TINY, tmp_path / "in.jsonl")


def test_refusals_say_what_to_do(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"tokens": [1]}\n')
    r = dask_classify("-m", TINY, tmp_path / "in.jsonl", "-o", tmp_path / "o.jsonl", "--scheduler",
                      "tcp://127.0.0.1:1", timeout=120)
    assert r.returncode == 1 and "cannot reach the Dask scheduler" in r.stderr
    r = dask_classify("-m", ROOT / "models" / "austen-lm", tmp_path / "in.jsonl", "-o", tmp_path / "o.jsonl",
                      "--local-workers", "1")
    assert r.returncode == 2 and "language model" in r.stderr
    r = dask_classify("-m", TINY, tmp_path / "missing.jsonl", "-o", tmp_path / "o.jsonl", "--local-workers", "1")
    assert r.returncode == 2 and "no such file" in r.stderr
    r = dask_classify("-m", TINY, tmp_path / "in.jsonl", "-o", tmp_path / "o.jsonl", "--local-workers", "0")
    assert r.returncode == 2


def test_bag_and_dataframe_api(cluster, tmp_path):
    import dask.bag as db
    import dask.dataframe as dd
    import pandas as pd
    from distributed import Client

    from longvq.dask import classify_bag, classify_dataframe

    records = [{"id": i, "tokens": [(i * 7 + k) % 40 for k in range(1 + i % 13)], "tag": "x"} for i in range(90)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    want = [json.loads(line) for line in run_cli("classify", "-m", TINY, tmp_path / "in.jsonl").splitlines()]
    with Client(cluster.address):
        got = classify_bag(db.from_sequence(records, npartitions=1), str(TINY)).compute()
        assert got == want
        # Several partitions: the same predictions ("index" counts within a partition).
        got = classify_bag(db.from_sequence(records, npartitions=4), str(TINY)).compute()
        assert [(g["id"], g["label"], g["probs"]) for g in got] == [(w["id"], w["label"], w["probs"]) for w in want]
        df = dd.from_pandas(pd.DataFrame({"id": [r["id"] for r in records], "tokens": [r["tokens"] for r in records]}),
                            npartitions=3)
        out = classify_dataframe(df, str(TINY), column="tokens").compute()
        assert out["label"].tolist() == [w["label"] for w in want]
        assert out["prob_0"].tolist() == pytest.approx([w["probs"][0] for w in want], abs=1e-6)
