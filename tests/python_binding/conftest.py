"""Shared fixtures of the binding's tests: the repository, the CLI binary, loaded models.

Run by ctest (label python) with PYTHONPATH=BUILD/python and LONGVQ_CLI=BUILD/.../longvq; by hand:
    PYTHONPATH=build/python LONGVQ_CLI=build/longvq /usr/bin/python3 -m pytest -q tests/python_binding
"""
import json
import os
import pathlib
import subprocess

import pytest

import longvq

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
DATA = ROOT / "tests" / "data"
MODELS = ROOT / "models"


def cli_path() -> str:
    p = os.environ.get("LONGVQ_CLI")
    if p:  # ctest names the binary it built: missing is a failure, not a skip
        if not os.path.exists(p):
            pytest.fail(f"LONGVQ_CLI={p} does not exist: build the longvq_cli target")
        return p
    p = str(ROOT / "build" / "longvq")
    if not os.path.exists(p):
        pytest.skip(f"the longvq CLI is not at {p} (set LONGVQ_CLI)")
    return p


def run_cli(*args, input=None) -> subprocess.CompletedProcess:
    """Runs `longvq ARGS` from the repository root; fails the test on a non-zero exit."""
    r = subprocess.run([cli_path(), *map(str, args)], cwd=ROOT, input=input, capture_output=True, timeout=300)
    assert r.returncode == 0, f"longvq {' '.join(map(str, args))} exited {r.returncode}: {r.stderr.decode()}"
    return r


def cli_jsonl(*args):
    return [json.loads(line) for line in run_cli(*args).stdout.decode().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def austen():
    return longvq.load(MODELS / "austen-lm", backend="cpu")


@pytest.fixture(scope="session")
def listops():
    return longvq.load(MODELS / "listops", backend="cpu")


@pytest.fixture(scope="session")
def fashion():
    return longvq.load(MODELS / "fashion-seq", backend="cpu")


@pytest.fixture(scope="session")
def tiny_lm():
    return longvq.load(FIXTURES / "lm_bytes_layernorm_tied", backend="cpu")


@pytest.fixture(scope="session")
def vocab_lm():
    return longvq.load(FIXTURES / "lm_rmsnorm_postnorm_untied", backend="cpu")


@pytest.fixture(scope="session")
def tiny_cls():
    return longvq.load(FIXTURES / "cls_batchnorm_tokens", backend="cpu")


@pytest.fixture(scope="session")
def tiny_pixels():
    return longvq.load(FIXTURES / "cls_pixels_postnorm_rawwin", backend="cpu")
