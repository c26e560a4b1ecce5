"""Step RSS (MiB) of W1-W5, minidl and PyTorch, measured as ``python -m benchmarks`` does
(a fresh process per engine and workload, one BLAS thread), without the timing:

    PYTHONPATH=. python benchmarks/step_memory.py [W1,W2,...] [minidl,torch]
"""

from __future__ import annotations

import sys

from benchmarks.__main__ import rss_in_subprocess


def main(argv: list[str]) -> None:
    keys = argv[0].split(",") if argv else ["W1", "W2", "W3", "W4", "W5"]
    engines = argv[1].split(",") if len(argv) > 1 else ["minidl", "torch"]
    for key in keys:
        row = {engine: rss_in_subprocess(key, engine, 1) for engine in engines}
        mib = {e: "n/a" if v is None else f"{v / 2**20:.1f}" for e, v in row.items()}
        print(key, " ".join(f"{e} {m}" for e, m in mib.items()), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
