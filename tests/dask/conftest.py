"""A real Dask cluster on loopback for the tests: `dask scheduler` and two `dask worker`
processes (no nanny: a worker killed stays dead), on free ports, stopped at the end."""
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli() -> str:
    p = os.environ.get("LONGVQ_CLI", str(ROOT / "build" / "longvq"))
    if not os.path.exists(p):
        pytest.fail(f"the longvq CLI is not at {p}: build it, or set LONGVQ_CLI")
    return p


class Cluster:
    def __init__(self, tmp: pathlib.Path, workers: int = 2):
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.log = tmp
        env = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", str(ROOT / "build" / "python")),
                   OMP_NUM_THREADS="1")
        self.scheduler = subprocess.Popen(
            [PY, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(self.port),
             "--no-dashboard"], stdout=open(tmp / "scheduler.log", "w"), stderr=subprocess.STDOUT, env=env)
        self.workers = [
            subprocess.Popen([PY, "-m", "distributed.cli.dask_worker", self.address, "--nthreads", "1", "--no-nanny",
                              "--no-dashboard", "--host", "127.0.0.1", "--death-timeout", "30"],
                             stdout=open(tmp / f"worker{i}.log", "w"), stderr=subprocess.STDOUT, env=env)
            for i in range(workers)]
        self.wait_for_workers(workers)

    def wait_for_workers(self, n: int, timeout: float = 60) -> None:
        from distributed import Client

        deadline = time.monotonic() + timeout
        with Client(self.address, timeout="30s") as c:
            while len(c.scheduler_info()["workers"]) < n:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{n} Dask workers did not connect in {timeout} s; see {self.log}")
                time.sleep(0.1)

    def stop(self) -> None:
        for p in self.workers + [self.scheduler]:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.workers + [self.scheduler]:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()
