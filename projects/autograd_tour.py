"""A tour of the autograd instruments: second derivatives, Hessian-vector products, the
drawn graph and a trace of the ops, each used on a real problem.

1. Newton's method. Gradient descent steps against the gradient with a fixed length;
   Newton's method divides by the curvature: x <- x - f'(x) / f''(x), in n dimensions
   x <- x - H^-1 g. Near a minimum its error squares at every step, while gradient descent
   shrinks it by a constant factor. The exact second derivatives come from autograd:
   differentiate the gradient again (``create_graph=True``). On f(x) = e^x - 2x and on
   Rosenbrock's valley, we count the iterations each method needs.
2. The curvature of a network's loss. For an MLP trained on MNIST the Hessian has 25,450^2
   entries, too many to form, but a Hessian-vector product H v costs about two backward
   passes. Power iteration v <- H v / ||H v|| finds the top eigenvalue (the sharpest
   direction); H v is checked against finite differences of the gradient and against
   ``minidl.autograd.functional.hvp``, and the eigenvalue of the last layer's block
   against the explicit block's eigvalsh. The top
   eigenvalue says which learning rates gradient descent can use: lr < 2 / lambda_max.
3. The graph. A two-layer MLP's loss drawn as boxes and arrows, then the graph of the
   gradient-norm penalty ||dL/dW||^2: the backward pass recorded as ops of its own.
4. The ops at work: the trace of one training step, op by op, with shapes, values, time
   and memory, and the time per op type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import minidl as md
from minidl import autograd, nn, optim
from minidl.autograd import functional
from minidl.nn import functional as F
from minidl.viz import draw_graph, graphviz_dot, line_plot, pyplot, render_graph, save_figure
from projects import _mnist
from projects.runner import RunContext

DESCRIPTION = "autograd tour: Newton's method, Hessian eigenvalues on MNIST, graphs, traces"
DATA = _mnist.FILES


# --------------------------------------------------------------------------- 1. Newton
def exp_minus_2x(x: md.Tensor) -> md.Tensor:
    """f(x) = e^x - 2x: f' = e^x - 2, f'' = e^x, minimum at x* = ln 2."""
    return x.exp() - 2 * x


def rosenbrock(p: md.Tensor) -> md.Tensor:
    """f(x, y) = (1 - x)^2 + 100 (y - x^2)^2: a curved valley, minimum at (1, 1)."""
    x, y = p[0], p[1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def gradient_and_hessian(f: Callable, x: md.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """g = df/dx and H = d2f/dx2 at x (a 1-D tensor of n values), by autograd.

    The gradient is computed with ``create_graph=True``, so g is itself the output of a
    graph; differentiating each g_i again gives row i of H."""
    x = x.detach().requires_grad_()
    (g,) = autograd.grad(f(x), x, create_graph=True)
    rows = [autograd.grad(g[i], x, retain_graph=True)[0].numpy() for i in range(len(x))]
    return g.detach().numpy(), np.stack(rows)


def gradient(f: Callable, x: np.ndarray) -> np.ndarray:
    t = md.tensor(x, requires_grad=True)
    return autograd.grad(f(t), t)[0].numpy()


Path = tuple[list[np.ndarray], list[float]]  # the iterates, and ||gradient|| at each


def newton(f: Callable, x0: np.ndarray, tol: float, max_iter: int = 50) -> Path:
    """Iterates of x <- x - H^-1 g until ||g|| < tol (or ``max_iter`` steps)."""
    path, norms = [x0], []
    while True:
        g, h = gradient_and_hessian(f, md.tensor(path[-1]))
        norms.append(float(np.linalg.norm(g)))
        if norms[-1] < tol or len(path) > max_iter:
            return path, norms
        path.append(path[-1] - np.linalg.solve(h, g))


def gradient_descent(f: Callable, x0: np.ndarray, lr: float, tol: float, max_iter: int) -> Path:
    """Iterates of x <- x - lr g until ||g|| < tol (or ``max_iter`` steps)."""
    path, norms = [x0], []
    while True:
        g = gradient(f, path[-1])
        norms.append(float(np.linalg.norm(g)))
        if norms[-1] < tol or len(path) > max_iter:
            return path, norms
        path.append(path[-1] - lr * g)


def compare_methods(
    name: str, f: Callable, x0: np.ndarray, lr: float, tol: float, max_iter: int
) -> tuple[dict[str, Any], dict[str, Path]]:
    runs = {
        "newton": newton(f, x0, tol),
        "gradient descent": gradient_descent(f, x0, lr, tol, max_iter),
    }
    result = {"start": x0, "lr_gradient_descent": lr, "tolerance_grad_norm": tol}
    for method, (path, norms) in runs.items():
        result[method.replace(" ", "_")] = {
            "iterations": len(path) - 1,
            "converged": norms[-1] < tol,
            "final_x": path[-1],
            "final_grad_norm": norms[-1],
        }
    return {name: result}, runs


def check_second_derivatives() -> dict[str, float]:
    """Autograd's Hessians against the closed forms, in float64."""
    x = np.array([0.3])
    _, h1 = gradient_and_hessian(exp_minus_2x, md.tensor(x))
    p = np.array([-1.2, 1.0])
    _, h2 = gradient_and_hessian(rosenbrock, md.tensor(p))
    exact = np.array([[2 - 400 * (p[1] - 3 * p[0] ** 2), -400 * p[0]], [-400 * p[0], 200.0]])
    library = functional.hessian(rosenbrock, md.tensor(p)).numpy()  # PyTorch's signature
    return {
        "exp_hessian_abs_err": float(abs(h1[0, 0] - np.exp(x[0]))),
        "rosenbrock_hessian_abs_err": float(np.abs(h2 - exact).max()),
        "rosenbrock_functional_hessian_abs_err": float(np.abs(library - exact).max()),
    }


# --------------------------------------------------------------------------- 2. curvature
class MLP(nn.Module):
    """784 -> 32 (tanh) -> 10. tanh, not ReLU: the loss is smooth, so its Hessian exists
    everywhere and finite differences of the gradient converge to H v."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(784, 32)
        self.out = nn.Linear(32, 10)

    def forward(self, x: md.Tensor) -> md.Tensor:
        return self.out(self.hidden(x).tanh())


def loss_of_parameters(model: MLP, x: md.Tensor, y: md.Tensor) -> Callable[..., md.Tensor]:
    """The loss as a function of the four parameter tensors (the model's own are left
    alone, so the curvature can be probed at any point)."""

    def loss(w1: md.Tensor, b1: md.Tensor, w2: md.Tensor, b2: md.Tensor) -> md.Tensor:
        hidden = (x @ w1.T + b1).tanh()
        return F.cross_entropy(hidden @ w2.T + b2, y)

    return loss


def train(model: MLP, data: _mnist.Splits, steps: int, lr: float, seed: int) -> list[float]:
    """Plain mini-batch SGD (batch 64); the loss of every step."""
    rng = np.random.default_rng(seed)
    optimizer = optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        batch = rng.choice(len(data.y_train), 64, replace=False)
        loss = F.cross_entropy(
            model(md.tensor(data.x_train[batch])), md.tensor(data.y_train[batch])
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def unit(vectors: tuple[md.Tensor, ...]) -> tuple[md.Tensor, ...]:
    norm = np.sqrt(sum(float((v * v).sum().item()) for v in vectors))
    return tuple(v / norm for v in vectors)


def dot(a: tuple[md.Tensor, ...], b: tuple[md.Tensor, ...]) -> float:
    return sum(float((u * v).sum().item()) for u, v in zip(a, b))


def hvp(
    loss: Callable, params: tuple[md.Tensor, ...], v: tuple[md.Tensor, ...]
) -> tuple[md.Tensor, ...]:
    """H v without forming H (Pearlmutter's trick): H v = d/dtheta (g(theta) . v), where
    g = dL/dtheta. The first backward keeps its graph (``create_graph=True``) so that the
    dot product g . v can be differentiated by a second one."""
    params = tuple(p.detach().requires_grad_() for p in params)
    grads = autograd.grad(loss(*params), params, create_graph=True)
    g_dot_v = sum((g * u).sum() for g, u in zip(grads, v))
    return autograd.grad(g_dot_v, params)


def power_iteration(
    loss: Callable, params: tuple[md.Tensor, ...], iterations: int, seed: int
) -> tuple[float, list[float], tuple[md.Tensor, ...]]:
    """The largest eigenvalue of the Hessian by v <- H v / ||H v||, with lambda = v . H v
    (the Rayleigh quotient) after each step; (lambda, its history, v)."""
    rng = np.random.default_rng(seed)
    v = unit(tuple(md.tensor(rng.standard_normal(p.shape)) for p in params))
    history = []
    for _ in range(iterations):
        hv = hvp(loss, params, v)
        history.append(dot(v, hv))
        v = unit(hv)
    return history[-1], history, v


def hvp_vs_finite_differences(
    loss: Callable, params: tuple[md.Tensor, ...], v: tuple[md.Tensor, ...], eps: float = 1e-4
) -> float:
    """max |H v - (g(theta + eps v) - g(theta - eps v)) / (2 eps)| / max |H v|, float64."""
    hv = hvp(loss, params, v)

    def grads_at(sign: float) -> list[np.ndarray]:
        shifted = tuple((p + sign * eps * d).detach().requires_grad_() for p, d in zip(params, v))
        return [g.numpy() for g in autograd.grad(loss(*shifted), shifted)]

    up, down = grads_at(1.0), grads_at(-1.0)
    diff = max(
        float(np.abs(h.numpy() - (u - d) / (2 * eps)).max()) for h, u, d in zip(hv, up, down)
    )
    return diff / max(float(np.abs(h.numpy()).max()) for h in hv)


def hvp_vs_functional(
    loss: Callable, params: tuple[md.Tensor, ...], v: tuple[md.Tensor, ...]
) -> float:
    """The two backward passes above against ``minidl.autograd.functional.hvp`` (PyTorch's
    ``torch.autograd.functional.hvp``): the same numbers, up to rounding."""
    _, library = functional.hvp(loss, params, v)
    ours = hvp(loss, params, v)
    return max(float(np.abs(a.numpy() - b.numpy()).max()) for a, b in zip(ours, library))


def last_layer_check(
    loss: Callable, params: tuple[md.Tensor, ...], iterations: int, seed: int, weight: bool
) -> dict[str, float]:
    """The last layer's block of the Hessian formed explicitly, one autograd row at a time
    (weight and bias: 330 x 330; the bias only, 10 x 10, when ``weight`` is false): power
    iteration on that block (3 x ``iterations``: its top eigenvalues lie closer together)
    against NumPy's eigvalsh of it."""
    w1, b1, w2, b2 = params
    n_w = w2.numel() if weight else 0

    def block_loss(flat: md.Tensor) -> md.Tensor:
        w = flat[:n_w].reshape(w2.shape) if weight else w2
        return loss(w1, b1, w, flat[n_w:])

    flat = (md.cat([w2.reshape(-1), b2]) if weight else b2).detach()
    _, explicit = gradient_and_hessian(block_loss, flat)
    top_eigh = float(np.linalg.eigvalsh(explicit)[-1])
    top_power, _, _ = power_iteration(block_loss, (flat,), 3 * iterations, seed)
    return {
        "block_size": int(flat.numel()),
        "symmetry_abs_err": float(np.abs(explicit - explicit.T).max()),
        "top_eigenvalue_eigvalsh": top_eigh,
        "top_eigenvalue_power_iteration": top_power,
    }


def curvature(ctx: RunContext, data: _mnist.Splits) -> dict[str, Any]:
    """Top Hessian eigenvalue of the loss on a fixed batch, at initialisation and after
    training, in float64."""
    model = MLP()
    n = ctx.subset(1000, 200)
    x, y = md.tensor(data.x_train[:n].astype(np.float64)), md.tensor(data.y_train[:n])
    iterations = 8 if ctx.quick else 40
    lr = 0.1
    result: dict[str, Any] = {"batch": n, "power_iterations": iterations, "lr": lr}
    histories = {}
    steps = {"init": 0, "trained": ctx.subset(1500, 60)}
    for stage, n_steps in steps.items():
        losses = train(model, data, n_steps, lr, ctx.seed) if n_steps else []
        if losses:
            ctx.log(f"mlp: {n_steps} SGD steps, loss {losses[0]:.4f} -> {losses[-1]:.4f}")
        params = tuple(
            p.detach().double()
            for p in (model.hidden.weight, model.hidden.bias, model.out.weight, model.out.bias)
        )
        loss = loss_of_parameters(model, x, y)
        top, history, v = power_iteration(loss, params, iterations, ctx.seed)
        histories[stage] = history
        result[stage] = {
            "sgd_steps": n_steps,
            "final_train_loss": losses[-1] if losses else None,
            "batch_loss": loss(*params).item(),
            "top_eigenvalue": top,
            "stable_lr_bound_2_over_lambda": 2 / top,
            "hvp_vs_finite_differences_rel_err": hvp_vs_finite_differences(loss, params, v),
            "hvp_vs_functional_hvp_max_abs_diff": hvp_vs_functional(loss, params, v),
            "last_layer_block": last_layer_check(
                loss, params, iterations, ctx.seed, weight=not ctx.quick
            ),
        }
    result["parameters"] = sum(p.numel() for p in model.parameters())
    line_plot(
        {stage: (np.arange(1, len(h) + 1), h) for stage, h in histories.items()},
        ctx.figure("power_iteration"),
        "power iteration",
        "v . H v",
        title="top Hessian eigenvalue of the MNIST MLP loss",
    )
    return result


# --------------------------------------------------------------------------- 3. graphs
def graphs(ctx: RunContext, data: _mnist.Splits) -> dict[str, Any]:
    """The graph of a small 2-layer MLP's loss and of its gradient penalty (the ops of
    the recorded backward pass in orange), as DOT text always and as SVG and PNG when
    Graphviz is installed."""
    model = nn.Sequential(nn.Linear(784, 16), nn.Tanh(), nn.Linear(16, 10))
    x, y = md.tensor(data.x_train[:8]), md.tensor(data.y_train[:8])
    params = {"x": x, "y": y, **dict(model.named_parameters())}
    loss = F.cross_entropy(model(x), y)
    grads = autograd.grad(loss, list(model.parameters()), create_graph=True)
    penalty = md.stack([(g * g).sum() for g in grads]).sum()
    drawn = {
        "mlp": draw_graph(loss, params=params, show_saved=True),
        "mlp_double_backward": draw_graph(penalty, params=params, forward=loss),
    }
    out: dict[str, Any] = {"graphviz": graphviz_dot() is not None}
    for name, dot in drawn.items():
        render_graph(dot, ctx.out / f"{name}.dot")
        out[f"{name}_nodes"] = dot.count("[label=") - dot.count("shape=plaintext")
        if graphviz_dot() is not None:
            render_graph(dot, ctx.out / f"{name}.svg")
            render_graph(dot, ctx.figure(name))
    return out


# --------------------------------------------------------------------------- 4. trace
def trace_one_step(ctx: RunContext, data: _mnist.Splits) -> dict[str, Any]:
    """Every op of one SGD step of the MLP (batch 64), in order, then per op type. One
    untraced step first: a first call pays one-time costs (memory, BLAS start-up)."""
    model = MLP()
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    x, y = md.tensor(data.x_train[:64]), md.tensor(data.y_train[:64])

    def step() -> None:
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()  # no op: SGD updates the arrays in place

    step()
    with autograd.trace(profile_memory=True) as tr:
        step()
    table, summary = tr.table(), tr.summary()
    (ctx.out / "trace.txt").write_text(f"{table}\n\n{summary}\n")
    print(table, summary, sep="\n\n")
    return {"ops_recorded": len(tr.records), "per_op": tr.by_op()}


# --------------------------------------------------------------------------- figures
def newton_figures(ctx: RunContext, runs: dict[str, dict[str, Path]]) -> None:
    for problem in ("exp_minus_2x", "rosenbrock"):
        series = {
            method: (np.arange(1, len(norms) + 1), np.maximum(norms, 1e-17))
            for method, (_, norms) in runs[problem].items()
        }
        line_plot(
            series,
            ctx.figure(f"newton_vs_gd_{problem}"),
            "iteration + 1",
            "||gradient||",
            title=f"{problem}: Newton vs gradient descent",
            logx=True,
            logy=True,
        )
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    xs, ys = np.meshgrid(np.linspace(-1.6, 1.6, 300), np.linspace(-0.6, 1.8, 300))
    values = (1 - xs) ** 2 + 100 * (ys - xs**2) ** 2
    ax.contour(xs, ys, np.log10(values + 1e-3), levels=25, cmap="Greys", linewidths=0.6)
    for method, (path, _) in runs["rosenbrock"].items():
        p = np.array(path)
        ax.plot(
            p[:, 0],
            p[:, 1],
            marker="." if len(p) < 50 else None,
            label=f"{method} ({len(p) - 1} steps)",
        )
    ax.plot([1], [1], "r*", markersize=10, label="minimum (1, 1)")
    ax.set(xlabel="x", ylabel="y", title="Rosenbrock: the paths of the two methods")
    ax.legend(fontsize=8)
    save_figure(fig, ctx.figure("rosenbrock_paths"))


# --------------------------------------------------------------------------- the run
def run(ctx: RunContext) -> None:
    max_iter = 2000 if ctx.quick else 100_000
    results, runs = {}, {}
    for name, f, x0, lr in (
        ("exp_minus_2x", exp_minus_2x, np.array([2.0]), 0.1),
        ("rosenbrock", rosenbrock, np.array([-1.2, 1.0]), 1e-3),
    ):
        result, runs[name] = compare_methods(name, f, x0, lr, tol=1e-8, max_iter=max_iter)
        results.update(result)
    ctx.record(newton=results, second_derivative_checks=check_second_derivatives())
    newton_figures(ctx, runs)
    data = _mnist.load_splits(ctx, n_train=10000, quick=(2000, 500, 500))
    ctx.data(**data.sizes())
    ctx.record(curvature=curvature(ctx, data))
    ctx.record(graphs=graphs(ctx, data))
    ctx.record(trace=trace_one_step(ctx, data))
