"""Classification across machines on Dask distributed.

    python3 -m longvq.dask classify -m MODEL IN.jsonl -o OUT.jsonl --scheduler tcp://HOST:PORT
    python3 -m longvq.dask classify -m MODEL IN.jsonl -o OUT.jsonl --local-workers 2

The client reads IN.jsonl as a stream and cuts it into partitions of ``--partition-lines`` lines;
each partition runs on a worker, which loads the model once (a worker plugin) and classifies the
lines exactly as ``longvq classify`` does (the same C++ code: ``Model.classify_jsonl``), so OUT is
byte for byte the CLI's output for the same input, ids and every other input field included.

Exactly once: the client writes each finished partition to ``OUT.parts/part-NNNNNNNN.jsonl``
atomically (temporary file, fsync, rename) and joins them into OUT at the end. A partition whose
worker dies is run again by the scheduler on another worker; its result is written once, by the
client, whichever worker made it. A job killed and started again with ``--resume`` skips the
partitions already in OUT.parts. A bad input line fails the job with the line named.

Also a Python API over Dask collections: :func:`classify_bag` and :func:`classify_dataframe`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

__all__ = ["ModelPlugin", "classify_file", "classify_bag", "classify_dataframe", "main"]

# --- on the workers -------------------------------------------------------------------------
# One model per worker process, loaded once and shared by the worker's threads (a Model is
# read-only; each call makes its own session).
_models: Dict[Tuple[str, int], Any] = {}
_models_lock = threading.Lock()


def _model(path: str, threads: int):
    import longvq

    key = (str(path), int(threads))
    with _models_lock:
        if key not in _models:
            _models[key] = longvq.load(path, threads=threads)
        return _models[key]


class ModelPlugin:
    """A Dask worker plugin that loads the model when a worker starts (or joins later), so the
    first partition does not pay for it and a model that cannot be loaded is reported at once."""

    name = "longvq-model"

    def __init__(self, model: str, threads: int = 1):
        self.model = str(model)
        self.threads = int(threads)

    def setup(self, worker=None):  # distributed.WorkerPlugin protocol
        _model(self.model, self.threads)


def _classify_partition(lines: List[str], model: str, threads: int, source: str, first_line: int,
                        first_index: int, batch: int, logits: bool) -> List[str]:
    return _model(model, threads).classify_jsonl(lines, source=source, first_line=first_line,
                                                  first_index=first_index, batch=batch, logits=logits)


# --- the client -----------------------------------------------------------------------------
def _partitions(path: str, lines_per: int) -> Iterator[Tuple[int, List[str], int, int]]:
    """(number, lines, first line number, first example index): the input cut into partitions
    of raw lines (blank lines included, as the CLI skips them without counting)."""
    part, lines, first_line, first_index, examples = 0, [], 1, 0, 0
    with open(path, "r", encoding="utf-8", errors="surrogateescape", newline="\n") as f:
        for n, line in enumerate(f, start=1):
            if not lines:
                first_line, first_index = n, examples
            line = line.rstrip("\n")
            lines.append(line)
            if line.strip():
                examples += 1
            if len(lines) == lines_per:
                yield part, lines, first_line, first_index
                part, lines = part + 1, []
    if lines:
        yield part, lines, first_line, first_index


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _part_path(parts: Path, n: int) -> Path:
    return parts / f"part-{n:08d}.jsonl"


class JobError(RuntimeError):
    """The job failed: a bad input line (named), a model that cannot be loaded, no workers."""


def classify_file(client, model: str, input_path: str, output_path: str, *, partition_lines: int = 2000,
                  threads: int = 1, batch: int = 16, logits: bool = False, resume: bool = False,
                  max_in_flight: Optional[int] = None, no_worker_timeout: float = 60.0,
                  progress=None) -> Dict[str, Any]:
    """Classifies the JSONL file ``input_path`` on the cluster behind ``client`` into
    ``output_path``: the CLI's lines, in input order. Returns counts and timings.

    Raises JobError (a bad line is named as ``IN.jsonl:LINE``) and keeps OUT.parts, so that the
    job can be continued with ``resume=True``. ``progress(partition, rows)`` is called as
    partitions finish."""
    from distributed import wait

    if partition_lines < 1:
        raise ValueError("partition_lines must be at least 1")
    model = os.path.abspath(model) if os.path.exists(model) else model
    out = Path(output_path)
    parts = Path(str(out) + ".parts")
    if parts.exists() and not resume and any(parts.iterdir()):
        raise JobError(f"{parts} holds the partitions of an interrupted job: add --resume to continue it, or delete "
                       "it to start over")
    parts.mkdir(parents=True, exist_ok=True)
    client.register_worker_plugin(ModelPlugin(model, threads), name=ModelPlugin.name)
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    max_in_flight = max_in_flight or 4 * workers  # bounds the client's memory, keeps every worker busy
    t0 = time.monotonic()
    total_parts = skipped = rows = 0
    in_flight: Dict[Any, int] = {}
    no_workers_since: Optional[float] = None

    def check_workers() -> None:
        nonlocal no_workers_since
        if client.scheduler_info().get("workers"):
            no_workers_since = None
        elif no_workers_since is None:
            no_workers_since = time.monotonic()
        elif time.monotonic() - no_workers_since > no_worker_timeout:
            raise JobError(f"no Dask worker has been connected for {no_worker_timeout:.0f} s; start workers "
                           "(dask worker tcp://HOST:PORT) or use --local-workers K")

    def drain(limit: int) -> None:
        """Waits until at most `limit` partitions are running, writing each finished one."""
        nonlocal rows
        while len(in_flight) > limit:
            try:
                done, _ = wait(list(in_flight), timeout=2.0, return_when="FIRST_COMPLETED")
            except TimeoutError:  # nothing finished: is anyone still working on it?
                check_workers()
                continue
            for future in done:
                n = in_flight.pop(future)
                try:
                    result = future.result()
                except Exception as e:  # the worker's ValueError keeps the CLI's message
                    for f in in_flight:
                        f.cancel()
                    raise JobError(str(e)) from None
                _write_atomically(_part_path(parts, n), "".join(line + "\n" for line in result))
                rows += len(result)
                if progress:
                    progress(n, len(result))

    run_id = f"{os.getpid()}-{int(t0 * 1000)}"
    for n, lines, first_line, first_index in _partitions(input_path, partition_lines):
        total_parts += 1
        if resume and _part_path(parts, n).exists():
            skipped += 1
            continue
        future = client.submit(_classify_partition, lines, model, threads, input_path, first_line, first_index,
                               batch, logits, key=f"longvq-classify-{run_id}-{n}", pure=False)
        in_flight[future] = n
        drain(max_in_flight - 1)
    drain(0)
    # Join the partitions in order into OUT, whole or not at all.
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            for n in range(total_parts):
                f.write(_part_path(parts, n).read_bytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    for n in range(total_parts):
        _part_path(parts, n).unlink()
    parts.rmdir()
    return {"partitions": total_parts, "skipped_partitions": skipped, "rows": rows,
            "seconds": time.monotonic() - t0, "workers": len(client.scheduler_info().get("workers", {}))}


# --- Dask collections -----------------------------------------------------------------------
def _classify_records(records: Sequence[Any], model: str, threads: int, batch: int, logits: bool) -> List[dict]:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    out = _model(model, threads).classify_jsonl(lines, source="<bag>", batch=batch, logits=logits)
    return [json.loads(line) for line in out]


def classify_bag(bag, model: str, *, threads: int = 1, batch: int = 16, logits: bool = False):
    """A dask.bag of classify's output records (dicts) for a bag of input records: dicts like
    ``{"text": ...}`` / ``{"tokens": [...]}`` / ``{"pixels": [...]}`` with optional "id",
    "label" and any other fields (echoed), or their JSON text. "index" counts within each
    partition. Each worker process loads the model once."""
    model = os.path.abspath(model) if os.path.exists(model) else model
    return bag.map_partitions(_classify_records, model, threads, batch, logits)


def _classify_frame(part, model: str, column: str, threads: int, batch: int, classes: int):
    import pandas as pd

    pixels = _model(model, threads).config["embedding"]["kind"] == "real"
    records = []
    for v in part[column].tolist():
        v = v.tolist() if hasattr(v, "tolist") else v
        records.append({"text": v} if isinstance(v, str) else {"pixels" if pixels else "tokens": list(v)})
    out = _classify_records(records, model, threads, batch, False) if records else []
    result = part.copy()
    result["label"] = pd.Series([r["label"] for r in out], index=part.index, dtype="int64")
    for c in range(classes):
        result[f"prob_{c}"] = pd.Series([r["probs"][c] for r in out], index=part.index, dtype="float64")
    return result


def classify_dataframe(df, model: str, column: str = "text", *, threads: int = 1, batch: int = 16):
    """``df`` (a dask.dataframe) with a "label" column (the predicted class) and a "prob_C"
    column per class, for the inputs in ``column``: texts (str), or token / pixel lists."""
    import pandas as pd
    import longvq

    model = os.path.abspath(model) if os.path.exists(model) else model
    classes = int(longvq.load(model).info()["num_classes"])
    meta = df._meta.assign(label=pd.Series(dtype="int64"),
                           **{f"prob_{c}": pd.Series(dtype="float64") for c in range(classes)})
    return df.map_partitions(_classify_frame, model, column, threads, batch, classes, meta=meta)


# --- the command line -----------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python3 -m longvq.dask",
        description="Classify a JSONL file on a Dask cluster; the output equals `longvq classify`'s.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  python3 -m longvq.dask classify -m models/listops in.jsonl -o out.jsonl --local-workers 2\n"
               "  dask scheduler --host 10.0.0.1 --port 8786 &            # once\n"
               "  dask worker tcp://10.0.0.1:8786 --nthreads 1 &          # on each machine (same model path)\n"
               "  python3 -m longvq.dask classify -m /srv/models/listops in.jsonl -o out.jsonl \\\n"
               "      --scheduler tcp://10.0.0.1:8786\n")
    sub = p.add_subparsers(dest="command", required=True, metavar="classify")
    c = sub.add_parser("classify", help="classify a JSONL file (the lines `longvq classify` takes)",
                       description="Classify IN.jsonl on a Dask cluster into OUT.jsonl, in input order.")
    c.add_argument("input", metavar="IN.jsonl", help="JSONL input (as for `longvq classify`)")
    c.add_argument("-m", "--model", required=True, help="model directory; the same path must exist on every worker")
    c.add_argument("-o", "--output", required=True, metavar="OUT.jsonl", help="where the predictions go")
    where = c.add_mutually_exclusive_group(required=True)
    where.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="a running Dask scheduler")
    where.add_argument("--local-workers", type=int, metavar="K", help="start a local cluster of K worker processes")
    c.add_argument("--partition-lines", type=int, default=2000, metavar="N",
                   help="input lines per partition (default 2000: hides the ~ms the scheduler costs per task)")
    c.add_argument("-t", "--threads", type=int, default=1, help="CPU threads per model call on a worker (default 1)")
    c.add_argument("-b", "--batch", type=int, default=16, help="sequences per forward pass (default 16)")
    c.add_argument("--logits", action="store_true", help="also write each input's raw class logits")
    c.add_argument("--resume", action="store_true", help="continue an interrupted job: keep the partitions in OUT.parts")
    c.add_argument("--no-worker-timeout", type=float, default=60.0, metavar="S",
                   help="fail when no worker has been connected for S seconds (default 60)")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    for name, value, low in (("--partition-lines", args.partition_lines, 1), ("--threads", args.threads, 0),
                             ("--batch", args.batch, 1), ("--local-workers", args.local_workers, 1)):
        if value is not None and value < low:
            print(f"error: {name} must be at least {low}", file=sys.stderr)
            return 2
    if not os.path.isfile(args.input):
        print(f"error: {args.input}: no such file; give a JSONL file", file=sys.stderr)
        return 2
    out_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(out_dir):
        print(f"error: -o {args.output}: the directory {out_dir} does not exist", file=sys.stderr)
        return 2
    try:
        import longvq

        info = longvq.load(args.model).info()  # fails fast, here, on a path that is not a model
        if info.get("task") != "classify":
            print(f"error: {args.model} is a language model; classify needs a classifier model", file=sys.stderr)
            return 2
    except (OSError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    from distributed import Client, LocalCluster

    cluster = None
    try:
        if args.local_workers:
            cluster = LocalCluster(n_workers=args.local_workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, host="127.0.0.1")
            client = Client(cluster)
        else:
            client = Client(args.scheduler, timeout="20s")
    except OSError as e:
        print(f"error: cannot reach the Dask scheduler {args.scheduler}: {e}; start one with `dask scheduler` "
              "or use --local-workers K", file=sys.stderr)
        return 1
    done = {"rows": 0, "parts": 0}
    show = not args.quiet and sys.stderr.isatty()  # a progress line for people, not for logs

    def progress(n: int, rows: int) -> None:
        done["rows"] += rows
        done["parts"] += 1
        if show:
            print(f"\rclassify: {done['parts']} partitions, {done['rows']} rows", end="", file=sys.stderr, flush=True)

    try:
        stats = classify_file(client, args.model, args.input, args.output, partition_lines=args.partition_lines,
                              threads=args.threads, batch=args.batch, logits=args.logits, resume=args.resume,
                              no_worker_timeout=args.no_worker_timeout, progress=progress)
    except JobError as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted: rerun with --resume to keep the finished partitions ({args.output}.parts)",
              file=sys.stderr)
        return 130
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    if show:
        print("", file=sys.stderr)
    print(f"classified {stats['rows']} rows in {stats['partitions']} partitions ({stats['skipped_partitions']} "
          f"already done) on {stats['workers']} workers in {stats['seconds']:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    # Run as the importable longvq.dask, not as __main__: what is sent to the workers (the
    # plugin, the partition function) is then pickled by reference, and the workers import it.
    from longvq.dask import main as _main

    sys.exit(_main())
