"""autograd_tour: exact second derivatives from autograd, Newton's quadratic convergence
against gradient descent, power iteration on known spectra, Hessian-vector products
against finite differences, and the quick run with its graphs, trace and figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minidl as md
from projects import _mnist
from projects.autograd_tour import (
    MLP,
    exp_minus_2x,
    gradient_and_hessian,
    gradient_descent,
    hvp_vs_finite_differences,
    loss_of_parameters,
    newton,
    power_iteration,
    rosenbrock,
    unit,
)
from projects.runner import run_project


def test_hessians_match_the_closed_forms():
    _, h = gradient_and_hessian(exp_minus_2x, md.tensor(np.array([0.7])))
    assert h[0, 0] == pytest.approx(np.exp(0.7), rel=1e-12)
    x, y = 0.5, -0.3
    g, h = gradient_and_hessian(rosenbrock, md.tensor(np.array([x, y])))
    np.testing.assert_allclose(g, [-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)])
    np.testing.assert_allclose(h, [[2 - 400 * (y - 3 * x**2), -400 * x], [-400 * x, 200]])


def test_newton_converges_quadratically_and_gradient_descent_linearly():
    path, norms = newton(exp_minus_2x, np.array([2.0]), tol=1e-10)
    assert norms[-1] < 1e-10 and len(norms) == len(path)
    errors = [abs(p[0] - np.log(2)) for p in path]
    assert len(path) - 1 <= 7 and errors[-1] < 1e-10
    # quadratic: each error is about C * (previous error)^2 with C = f'''/(2 f'') = 1/2
    assert errors[-2] < 0.6 * errors[-3] ** 2 + 1e-15
    gd, _ = gradient_descent(exp_minus_2x, np.array([2.0]), lr=0.1, tol=1e-10, max_iter=10_000)
    assert len(gd) > 10 * len(path) and abs(gd[-1][0] - np.log(2)) < 1e-9
    rosen, _ = newton(rosenbrock, np.array([-1.2, 1.0]), tol=1e-8)
    np.testing.assert_allclose(rosen[-1], [1.0, 1.0], atol=1e-8)
    assert len(rosen) - 1 <= 10


def test_power_iteration_finds_the_top_eigenvalue_of_a_known_quadratic():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    eigenvalues = np.array([5.0, 2.0, 1.0, 0.5, -0.5, 0.1])
    a = md.tensor(q @ np.diag(eigenvalues) @ q.T)

    def quadratic(x: md.Tensor) -> md.Tensor:  # 1/2 x^T A x: its Hessian is A
        return 0.5 * (x * (a @ x)).sum()

    top, history, v = power_iteration(quadratic, (md.tensor(np.ones(6)),), 60, seed=0)
    assert top == pytest.approx(5.0, rel=1e-6)
    assert abs(abs(float(v[0].numpy() @ q[:, 0])) - 1) < 1e-5  # the top eigenvector
    assert history[0] < history[-1]


def test_hvp_of_the_mlp_loss_agrees_with_finite_differences():
    md.manual_seed(0)
    model = MLP()
    rng = np.random.default_rng(0)
    x, y = md.tensor(rng.standard_normal((16, 784))), md.tensor(rng.integers(0, 10, 16))
    params = tuple(
        p.detach().double()
        for p in (model.hidden.weight, model.hidden.bias, model.out.weight, model.out.bias)
    )
    v = unit(tuple(md.tensor(rng.standard_normal(p.shape)) for p in params))
    assert hvp_vs_finite_differences(loss_of_parameters(model, x, y), params, v) < 1e-6


@pytest.mark.skipif(not _mnist.available(), reason="MNIST is not under MINIDL_DATA")
def test_quick_run_writes_metrics_graphs_trace_and_figures(tmp_path):
    run_project("autograd_tour", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    results = report["results"]
    for problem in ("exp_minus_2x", "rosenbrock"):
        newton_result = results["newton"][problem]["newton"]
        assert newton_result["converged"] and newton_result["iterations"] <= 10
    assert max(results["second_derivative_checks"].values()) < 1e-9
    curvature = results["curvature"]
    for stage in ("init", "trained"):
        assert curvature[stage]["top_eigenvalue"] > 0
        assert curvature[stage]["hvp_vs_finite_differences_rel_err"] < 1e-5
        assert curvature[stage]["hvp_vs_functional_hvp_max_abs_diff"] < 1e-12
        block = curvature[stage]["last_layer_block"]
        assert block["symmetry_abs_err"] < 1e-10
    assert (tmp_path / "mlp.dot").read_text().startswith("digraph")
    graphs = results["graphs"]
    assert graphs["mlp_double_backward_nodes"] > 2 * graphs["mlp_nodes"]
    assert "backward" in (tmp_path / "trace.txt").read_text()
    for name in report["figures"]:
        assert (tmp_path / name).stat().st_size > 1000
