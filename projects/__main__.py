"""``python -m projects list`` and
``python -m projects run NAME [--quick] [--epochs N] [--seed S] [--out DIR] [--quiet]
[--threads N] [--distributed] [--full]``
(``mpiexec -n K python -m projects run NAME --distributed``: data-parallel on K ranks)."""

from __future__ import annotations

import argparse
import os
import sys

from projects.runner import (
    THREADS,
    THREADS_ENV,
    ProjectError,
    load_project,
    project_names,
    run_project,
)


def _threads_default() -> int | None:
    value = os.environ.get(THREADS_ENV, str(THREADS))
    return None if value in ("", "0", "default") else int(value)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m projects")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the projects")
    run = sub.add_parser("run", help="run one project")
    run.add_argument("name")
    run.add_argument("--quick", action="store_true", help="a small slice, a few steps")
    run.add_argument(
        "--full", action="store_true", help="full sizes where a run here is sized to the CPU"
    )
    run.add_argument("--epochs", type=int, help="override the number of epochs")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--out", help="output folder (default runs/NAME, runs/NAME-quick)")
    run.add_argument("--quiet", action="store_true", help="no progress lines, only results")
    run.add_argument(
        "--threads",
        "--blas-threads",  # its first name, from when only BLAS had threads
        dest="threads",
        type=int,
        default=_threads_default(),
        help=f"minidl's threads (default {THREADS}, or ${THREADS_ENV}; 0: minidl's default)",
    )
    run.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over the ranks of `mpiexec -n K` (projects that support it)",
    )
    args = parser.parse_args(argv)
    if args.command == "list":
        names = project_names()
        width = max(len(n) for n in names)
        for name in names:
            print(f"{name.ljust(width)}  {load_project(name).DESCRIPTION}")
        return 0
    try:
        run_project(
            args.name,
            args.out,
            args.quick,
            args.epochs,
            args.seed,
            argv,
            distributed=args.distributed,
            quiet=args.quiet,
            threads=args.threads or None,
            full=args.full,
        )
    except ProjectError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
