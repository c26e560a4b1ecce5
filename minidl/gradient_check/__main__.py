"""``python -m minidl.gradient_check [--op NAME] [--seed N] [--order 1|2]``: check every
registered case and print a table (case, ops, input shapes, max abs and rel error of the
first derivative, of the second derivative, pass/fail). ``--order 1`` checks first
derivatives only; ``--order 2`` (the default) both. Exits with status 1 if any case fails;
an op without a second derivative fails with the error in the last column."""

from __future__ import annotations

import argparse
import sys

from minidl.gradient_check import graph_ops
from minidl.gradient_check.registry import Case, all_cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minidl.gradient_check", description=__doc__)
    parser.add_argument("--op", help="only cases whose name or ops contain this text")
    parser.add_argument("--seed", type=int, default=0, help="seed for inputs and upstream grads")
    parser.add_argument("--order", type=int, choices=(1, 2), default=2, help="highest order")
    args = parser.parse_args(argv)
    cases = {n: c for n, c in all_cases().items() if _matches(n, c, args.op, args.seed)}
    rows, failed = [], 0
    for name, case in cases.items():
        first = case.check(seed=args.seed, raise_on_failure=False)
        results = [first]
        if args.order == 2:
            results.append(case.check(seed=args.seed, raise_on_failure=False, order=2))
        passed = all(results)
        failed += not passed
        shapes = " ".join("x".join(map(str, s)) or "()" for s in first.shapes)
        errors = [f"{r.max_abs_err:.1e} / {r.max_rel_err:.1e}" for r in results]
        verdict = "pass" if passed else "FAIL " + next(r.error for r in results if not r)
        rows.append((name, ",".join(first.ops), shapes, *errors, verdict))
    if not rows:
        print(f"no case matches --op {args.op!r}", file=sys.stderr)
        return 2
    header = ("case", "ops", "input shapes", "1st abs / rel err", "2nd abs / rel err")
    header = (*header[: 3 + args.order], "result")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    print(f"\n{len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _matches(name: str, case: Case, text: str | None, seed: int) -> bool:
    """Does the case's name or one of its ops contain ``text``? Only the forward is run
    to find the ops (with the graph recorded), so filtering costs no gradient check."""
    if not text or text.lower() in name.lower():
        return True
    out = case.fn(*case.inputs(seed))
    return text.lower() in " ".join(graph_ops(out)).lower()


if __name__ == "__main__":
    sys.exit(main())
