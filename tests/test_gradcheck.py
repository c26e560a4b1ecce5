"""The gradient checker itself: it catches wrong backwards, and every op is registered."""

from __future__ import annotations

import re

import numpy as np
import pytest

import minidl as md
from minidl.gradient_check import GradcheckError, gradcheck, graph_ops
from minidl.gradient_check.__main__ import main
from minidl.gradient_check.registry import all_cases, normal, register
from minidl.tensor import Op


class TransposedGrad(Op):
    """y = x @ w with a backward that forgets a transpose (for a square w it still has
    the right shape, and an all-ones upstream gradient would hide it)."""

    def forward(self, x, w):
        self.save_for_backward(x, w)
        return x @ w

    def backward(self, dy):
        x, w = self.saved
        return dy @ w, x.T @ dy


class Halved(Op):
    """y = x^2 with dx = x (off by a factor of 2)."""

    def forward(self, x):
        self.save_for_backward(x)
        return x * x

    def backward(self, dy):
        (x,) = self.saved
        return dy * x


TEST_ONLY = {"TransposedGrad", "Halved", "NoDouble"}


def test_gradcheck_catches_a_missing_transpose():
    rng = np.random.default_rng(0)
    x = md.tensor(rng.standard_normal((3, 3)), requires_grad=True)
    w = md.tensor(rng.standard_normal((3, 3)), requires_grad=True)
    with pytest.raises(GradcheckError, match=r"TransposedGrad: input 0 of shape \(3, 3\)"):
        gradcheck(lambda a, b: TransposedGrad()(a, b), x, w)


def test_gradcheck_error_names_index_and_both_values():
    x = md.tensor([1.0, -2.0, 3.0], requires_grad=True)
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a: Halved()(a), x, seed=1)
    found = re.search(
        r"worst at index \((\d),\): analytic (\S+) vs numerical (\S+)", str(info.value)
    )
    assert found, str(info.value)
    analytic, numerical = float(found[2]), float(found[3])
    assert analytic == pytest.approx(numerical / 2, rel=1e-5)  # the bug: half the gradient


def test_gradcheck_passes_and_reports_errors():
    result = gradcheck(lambda a: (a * a).sum(), md.tensor([1.0, 2.0], requires_grad=True))
    assert result and result.max_abs_err < 1e-6 and result.ops == ["Mul", "Sum"]


def _function_classes():
    import minidl.ops  # noqa: F401  (imports every op family)

    found, stack = set(), [Op]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            stack.append(sub)
            concrete = sub.__module__.startswith("minidl.") and not sub.__dict__.get("_abstract")
            if concrete and sub.__name__ not in TEST_ONLY:
                found.add(sub.__name__)
    return found


def test_every_op_has_a_registered_gradcheck_case():
    covered = set()
    for case in all_cases().values():
        covered.update(case.check(raise_on_failure=False).ops)
    missing = _function_classes() - covered
    assert not missing, f"ops without a gradcheck case: {sorted(missing)}"


def test_every_registered_case_passes_second_order():
    """gradgradcheck of every case: create_graph works through every op and layer (an op
    without a double backward fails here with its name, it is never skipped)."""
    results = {n: c.check(raise_on_failure=False, order=2) for n, c in all_cases().items()}
    failures = {
        n: r.error or f"max abs err {r.max_abs_err:.2g}" for n, r in results.items() if not r
    }
    assert not failures


def test_a_missing_double_backward_fails_the_second_order_report(capsys):
    from minidl.gradient_check import registry

    class NoDouble(Op):
        double_backward = False

        def forward(self, x):
            return x * 2

        def backward(self, dy):
            return dy * 2

    register("no double backward (on purpose)", lambda a: NoDouble()(a), normal((3,)))
    try:
        assert main(["--op", "on purpose", "--order", "1"]) == 0
        assert main(["--op", "on purpose"]) == 1
        assert "NoDouble: create_graph=True needs" in capsys.readouterr().out
    finally:
        del registry.CASES["no double backward (on purpose)"]


def test_every_registered_case_passes():
    failures = [n for n, c in all_cases().items() if not c.check(raise_on_failure=False)]
    assert not failures


def test_report_command(capsys):
    assert main(["--op", "matmul", "--order", "1"]) == 0
    out = capsys.readouterr().out
    assert "MatMul" in out and "1st abs / rel err" in out and "0 failed" in out
    assert "2nd abs" not in out
    assert main(["--op", "no-such-op"]) == 2


def test_report_has_a_second_order_column(capsys):
    assert main(["--op", "erf"]) == 0
    out = capsys.readouterr().out
    assert "Erf" in out and "2nd abs / rel err" in out and "0 failed" in out


def test_report_command_fails_on_a_broken_op(capsys):
    from minidl.gradient_check import registry

    register("halved (broken on purpose)", lambda a: Halved()(a), normal((3,)))
    try:
        assert main(["--op", "halved"]) == 1
        assert "FAIL" in capsys.readouterr().out
    finally:
        del registry.CASES["halved (broken on purpose)"]


def test_the_package_is_not_shadowed_by_the_function():
    import minidl.gradient_check as package

    assert package.__name__ == "minidl.gradient_check" and callable(md.gradcheck)
    assert md.gradcheck is package.gradcheck


def test_report_filters_before_checking(monkeypatch, capsys):
    from minidl.gradient_check.registry import Case

    checked = []
    original = Case.check

    def spy(self, *args, **kwargs):
        checked.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Case, "check", spy)
    assert main(["--op", "matmul", "--order", "1"]) == 0
    cases = all_cases()
    assert 0 < len(checked) < len(cases) / 2  # only the matching cases were checked
    for name in checked:
        ops = graph_ops(cases[name].fn(*cases[name].inputs(0)))
        assert "matmul" in (name + " ".join(ops)).lower()
