"""Command line: prepare data sets, or write the committed test slices.

  cd tools && /usr/bin/python3 -m longvq_data prepare {austen,bible,listops,fashion,all} [--root ../data]
  cd tools && /usr/bin/python3 -m longvq_data make-slices [--root ../data] [--out ../tests/data]
"""
from __future__ import annotations

import argparse
import sys
import time

from . import austen, bible, fashion, listops
from .common import DEFAULT_ROOT, DataError, log
from .slices import DEFAULT_OUT, make_slices

DATASETS = {"austen": austen, "bible": bible, "listops": listops, "fashion": fashion}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m longvq_data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="download/generate data sets into the data root")
    prep.add_argument("dataset", choices=[*DATASETS, "all"])
    prep.add_argument("--root", default=None, help=f"data root (default {DEFAULT_ROOT})")
    slices = sub.add_parser("make-slices", help="write the small committed test slices")
    slices.add_argument("--root", default=None, help=f"data root (default {DEFAULT_ROOT})")
    slices.add_argument("--out", default=None, help=f"output folder (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)

    try:
        if args.command == "prepare":
            names = list(DATASETS) if args.dataset == "all" else [args.dataset]
            for name in names:
                start = time.monotonic()
                DATASETS[name].prepare(args.root)
                log(f"{name}: done in {time.monotonic() - start:.1f}s")
        else:
            make_slices(args.root, args.out)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
