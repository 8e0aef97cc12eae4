"""Pieces every data set shares: the data root, apt installs, DONE markers, progress lines."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ROOT = REPO_ROOT / "data"
DONE_NAME = "DONE.json"


class DataError(RuntimeError):
    """A data set is missing, malformed, or cannot be prepared."""


def data_root(root=None) -> Path:
    return Path(root) if root is not None else DEFAULT_ROOT


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def apt_installed(package: str) -> bool:
    try:
        status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                                capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:  # not a Debian system: let the caller's own file checks decide
        return False
    return "install ok installed" in status


def ensure_apt_package(package: str) -> None:
    """Installs a Debian package if it is missing; raises DataError with the command to run on failure."""
    if apt_installed(package):
        return
    prefix = [] if os.geteuid() == 0 else ["sudo"]
    manual = f"sudo apt-get update && sudo apt-get install -y --no-install-recommends {package}"
    if prefix and shutil.which("sudo") is None:
        raise DataError(f"Debian package {package} is missing and sudo is not available; run as root:\n  {manual}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = prefix + ["apt-get", "install", "-y", "--no-install-recommends", package]
    log(f"installing Debian package {package}: {' '.join(install)}")
    # apt's chatter goes to stderr with our progress lines; stdout stays clean.
    if subprocess.run(install, env=env, stdout=sys.stderr, check=False).returncode != 0:
        # A stale package list is the usual cause; one refresh is cheap compared to failing.
        log("install failed; refreshing the package list and trying once more")
        subprocess.run(prefix + ["apt-get", "update"], env=env, stdout=sys.stderr, check=False)
        if subprocess.run(install, env=env, stdout=sys.stderr, check=False).returncode != 0:
            raise DataError(f"could not install Debian package {package}; run:\n  {manual}")
    if not apt_installed(package):
        raise DataError(f"Debian package {package} still not installed; run:\n  {manual}")


def params_hash(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def read_done(directory: Path, params: dict):
    """The DONE marker's content if it matches params and every file it lists has its recorded size, else None."""
    marker = directory / DONE_NAME
    if not marker.is_file():
        return None
    try:
        done = json.loads(marker.read_text())
    except json.JSONDecodeError:
        return None
    if done.get("params_hash") != params_hash(params):
        return None
    for name, size in done.get("files", {}).items():
        path = directory / name
        if not path.is_file() or path.stat().st_size != size:
            return None
    return done


def already_prepared(name: str, directory: Path, params: dict):
    """read_done, and a line saying the data set is there when it is (prepare's first step)."""
    done = read_done(directory, params)
    if done is not None:
        log(f"{name}: already prepared in {directory} ({describe_sizes(done)})")
    return done


def write_done(directory: Path, params: dict, files: list, **extra) -> dict:
    done = {"params": params, "params_hash": params_hash(params),
            "files": {name: (directory / name).stat().st_size for name in files}, **extra}
    (directory / DONE_NAME).write_text(json.dumps(done, indent=2, sort_keys=True) + "\n")
    return done


def describe_sizes(done: dict) -> str:
    return ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in done["files"].items())


class Progress:
    """Prints 'label: i/n, rate/s, ETA' to stderr every `every` items."""

    def __init__(self, label: str, total: int, every: int):
        self.label, self.total, self.every = label, total, every
        self.start = time.monotonic()

    def update(self, done: int) -> None:
        if done % self.every and done != self.total:
            return
        elapsed = time.monotonic() - self.start
        rate = done / elapsed if elapsed > 0 else float("inf")
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        log(f"{self.label}: {done}/{self.total}  {rate:.0f}/s  elapsed {elapsed:.0f}s  ETA {eta:.0f}s")
