"""Backpropagation by hand: MLPs on MNIST whose forward and backward passes are written in
NumPy, layer by layer, with no autograd.

Every layer is a small class. ``forward`` computes the output and caches what the backward
pass will need; ``backward`` receives dL/d(output) and returns dL/d(input) -- one step of the
chain rule -- and a ``Dense`` layer also stores dL/dW and dL/db for the optimizer. A network
is a list of layers: its forward runs them first to last, its backward last to first.

The hand-written gradients are checked twice, before and after training: against minidl's
autograd on the same weights and batch (float64, equal to 1e-6), and against central finite
differences (max relative error recorded). Then a deep sigmoid network and a deep ReLU
network are trained side by side, and their per-layer gradient norms show why sigmoid
networks learn slowly when deep: each sigmoid multiplies the backward signal by
s (1 - s) <= 1/4, so the first layers get the smallest gradients.
"""

from __future__ import annotations

import copy
import functools
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

import minidl as md
from minidl import nn
from minidl.viz import gradient_norms, learning_curves, line_plot
from projects import _mnist
from projects.runner import RunContext

DESCRIPTION = "MNIST: MLPs with hand-written NumPy backprop, checked against autograd"
DATA = _mnist.FILES


# --------------------------------------------------------------------------- layers
class Dense:
    """A fully connected layer, PyTorch's layout:  y = x @ W.T + b.

    x: (N, n_in) -> y: (N, n_out);  W: (n_out, n_in), b: (n_out,).

    Since y[n, k] = sum_i x[n, i] W[k, i] + b[k], the chain rule with dy = dL/dy gives
        dW = dy.T @ x      (n_out, n_in)   dL/dW[k, i] = sum_n dy[n, k] x[n, i]
        db = dy.sum(0)     (n_out,)        dL/db[k]    = sum_n dy[n, k]
        dx = dy @ W        (N, n_in)       dL/dx[n, i] = sum_k dy[n, k] W[k, i]
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        self.W, self.b = weight, bias
        self.dW, self.db = np.zeros_like(weight), np.zeros_like(bias)
        self.x: np.ndarray | None = None

    @classmethod
    def initialised(
        cls, n_in: int, n_out: int, std: float, rng: np.random.Generator, dtype: Any = np.float32
    ) -> Dense:
        """W ~ N(0, std^2), b = 0."""
        return cls(rng.normal(0.0, std, (n_out, n_in)).astype(dtype), np.zeros(n_out, dtype))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return x @ self.W.T + self.b

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self.dW = dy.T @ self.x
        self.db = dy.sum(axis=0)
        return dy @ self.W

    def __repr__(self) -> str:
        return f"Dense({self.W.shape[1]} -> {self.W.shape[0]})"


class Sigmoid:
    """s = 1 / (1 + exp(-x)), elementwise, (N, D) -> (N, D).

    ds/dx = s (1 - s), so  dx = dy * s * (1 - s).  The factor is at most 1/4 (at x = 0) and
    near 0 where the unit saturates: the backward signal shrinks at every sigmoid it crosses.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        # exp(-log(1 + exp(-x))) never overflows, unlike 1 / (1 + exp(-x)) for x << 0.
        self.s = np.exp(-np.logaddexp(0, -x)).astype(x.dtype, copy=False)
        return self.s

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy * self.s * (1 - self.s)

    def __repr__(self) -> str:
        return "Sigmoid()"


class ReLU:
    """y = max(x, 0), elementwise, (N, D) -> (N, D).

    dy/dx = 1 where x > 0, else 0, so  dx = dy * [x > 0]: the gradient passes unchanged
    through active units, whatever the depth.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.active = x > 0
        return x * self.active

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy * self.active

    def __repr__(self) -> str:
        return "ReLU()"


class SoftmaxCrossEntropy:
    """The mean cross-entropy of softmax probabilities, from logits.

    z: (N, C) logits, y: (N,) class indices -> L, a scalar:
        p = softmax(z) row by row,  L = -(1/N) sum_n log p[n, y_n].
    Softmax and log-loss together have the simplest derivative of all:
        dL/dz = (p - onehot(y)) / N      (N, C)
    """

    def forward(self, z: np.ndarray, y: np.ndarray) -> float:
        shifted = z - z.max(axis=1, keepdims=True)  # the same softmax, no overflow in exp
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self.p, self.y = np.exp(log_p), y
        return float(-log_p[np.arange(len(y)), y].mean())

    def backward(self) -> np.ndarray:
        dz = self.p.copy()
        dz[np.arange(len(self.y)), self.y] -= 1
        return dz / len(self.y)


ACTIVATIONS = {"sigmoid": Sigmoid, "relu": ReLU}


# --------------------------------------------------------------------------- network
class Network:
    """Dense -> activation -> ... -> Dense, with a softmax cross-entropy loss.

    sizes: [784, h1, ..., 10]. The weights are drawn with the init suited to the activation:
    He, std = sqrt(2 / n_in), for ReLU; Xavier, std = sqrt(2 / (n_in + n_out)), for sigmoid.
    """

    def __init__(
        self, sizes: list[int], activation: str, rng: np.random.Generator, dtype: Any = np.float32
    ) -> None:
        self.sizes, self.activation = list(sizes), activation
        self.layers: list[Any] = []
        for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
            std = np.sqrt(2 / n_in) if activation == "relu" else np.sqrt(2 / (n_in + n_out))
            self.layers.append(Dense.initialised(n_in, n_out, std, rng, dtype))
            if i < len(sizes) - 2:
                self.layers.append(ACTIVATIONS[activation]())
        self.criterion = SoftmaxCrossEntropy()

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, 784) -> logits (N, 10)."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        return self.criterion.forward(self.forward(x), y)

    def backward(self) -> None:
        """The chain rule from the loss back to the input: each layer turns dL/d(output)
        into dL/d(input); the Dense layers keep dL/dW and dL/db on the way."""
        grad = self.criterion.backward()
        for layer in reversed(self.layers):
            grad = layer.backward(grad)

    def dense(self) -> Iterator[tuple[int, Dense]]:
        """(position in ``layers``, layer) of each Dense layer, first to last."""
        return ((i, layer) for i, layer in enumerate(self.layers) if isinstance(layer, Dense))

    def sgd_step(self, lr: float) -> None:
        """Plain gradient descent: W <- W - lr dL/dW, b <- b - lr dL/db."""
        for _, layer in self.dense():
            layer.W -= lr * layer.dW
            layer.b -= lr * layer.db

    def parameters(self) -> dict[str, np.ndarray]:
        """The weights under the keys of the equivalent ``nn.Sequential`` ("0.weight", ...)."""
        out = {}
        for i, layer in self.dense():
            out[f"{i}.weight"], out[f"{i}.bias"] = layer.W, layer.b
        return out

    def gradients(self) -> dict[str, np.ndarray]:
        """dL/dW and dL/db of the last backward, keyed as ``parameters``."""
        out = {}
        for i, layer in self.dense():
            out[f"{i}.weight"], out[f"{i}.bias"] = layer.dW, layer.db
        return out

    def astype(self, dtype: Any) -> Network:
        """A copy with every weight in ``dtype`` (float64 for the gradient checks)."""
        twin = copy.deepcopy(self)
        for _, layer in twin.dense():
            layer.W, layer.b = layer.W.astype(dtype), layer.b.astype(dtype)
        return twin

    def predict(self, x: np.ndarray, batch_size: int = 2000) -> np.ndarray:
        """Class scores (N, 10), in chunks to bound the cached activations."""
        return np.concatenate(
            [self.forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        )


# --------------------------------------------------------------------------- checks
def torch_like_model(net: Network) -> nn.Module:
    """The same network built from minidl layers in float64, holding ``net``'s weights."""
    modules: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(net.sizes)):
        modules.append(nn.Linear(n_in, n_out, dtype=md.float64))
        if i < len(net.sizes) - 2:
            modules.append(nn.ReLU() if net.activation == "relu" else nn.Sigmoid())
    model = nn.Sequential(*modules)
    model.load_state_dict({k: v.astype(np.float64) for k, v in net.parameters().items()})
    return model


def manual_gradients(net: Network, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Hand-written gradients of the mean loss on (x, y), in float64."""
    twin = net.astype(np.float64)
    twin.loss(x.astype(np.float64), y)
    twin.backward()
    return twin.gradients()


def autograd_gradients(net: Network, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """minidl's autograd gradients of the same loss, same weights, same batch, in float64."""
    model = torch_like_model(net)
    loss = nn.functional.cross_entropy(model(md.tensor(x.astype(np.float64))), md.tensor(y))
    loss.backward()
    return {name: p.grad.numpy() for name, p in model.named_parameters()}


def max_abs_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def finite_difference_error(
    net: Network,
    x: np.ndarray,
    y: np.ndarray,
    per_param: int = 8,
    eps: float = 1e-4,
    seed: int = 0,
    floor: float = 1e-6,
) -> dict[str, float]:
    """Compare the backward gradient a with the central difference
    n = (L(w + eps) - L(w - eps)) / (2 eps) on ``per_param`` random entries of every weight
    and bias, in float64. Returns the largest absolute error |a - n|, the largest relative
    error |a - n| / (|a| + |n|) over entries larger than ``floor``, and the number of
    entries skipped.

    Below ``floor`` the difference quotient is mostly rounding error (~1e-16 L / eps), so
    tiny entries are judged by the absolute error only. An entry whose +-eps step switches
    a ReLU on or off is skipped: the loss has a kink between the two points, so the
    difference quotient is not its derivative there. eps = 1e-4 balances the rounding error
    against the truncation error (~eps^2)."""
    twin = net.astype(np.float64)
    x = x.astype(np.float64)
    analytic = manual_gradients(twin, x, y)
    twin.loss(x, y)
    pattern = _relu_pattern(twin)
    rng = np.random.default_rng(seed)
    worst_abs = worst_rel = 0.0
    skipped = 0
    for name, w in twin.parameters().items():
        for flat in rng.choice(w.size, size=min(per_param, w.size), replace=False):
            numeric, kink = _central_difference(
                twin, w, np.unravel_index(flat, w.shape), x, y, eps, pattern
            )
            a = analytic[name].flat[flat]
            skipped += kink
            if kink:
                continue
            worst_abs = max(worst_abs, abs(a - numeric))
            if max(abs(a), abs(numeric)) > floor:
                worst_rel = max(worst_rel, abs(a - numeric) / (abs(a) + abs(numeric)))
    return {"max_abs_err": worst_abs, "max_rel_err": worst_rel, "skipped_at_relu_kinks": skipped}


def _relu_pattern(net: Network) -> np.ndarray:
    """Which ReLU units were on in the last forward pass, all layers in one flat array."""
    masks = [layer.active.ravel() for layer in net.layers if isinstance(layer, ReLU)]
    return np.concatenate(masks) if masks else np.zeros(0, bool)


def _central_difference(
    net: Network,
    w: np.ndarray,
    at: tuple,
    x: np.ndarray,
    y: np.ndarray,
    eps: float,
    pattern: np.ndarray,
) -> tuple[float, bool]:
    """(L(w + eps e_at) - L(w - eps e_at)) / (2 eps), and whether a ReLU switched on the way
    (``pattern``: the units on at w). ``w`` is restored."""
    original = w[at]
    w[at] = original + eps
    up = net.loss(x, y)
    kink = not np.array_equal(_relu_pattern(net), pattern)
    w[at] = original - eps
    down = net.loss(x, y)
    kink = kink or not np.array_equal(_relu_pattern(net), pattern)
    w[at] = original
    return (up - down) / (2 * eps), kink


def check_gradients(net: Network, x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, float]:
    """Both checks of the backward pass on one batch."""
    manual = manual_gradients(net, x, y)
    numeric = finite_difference_error(net, x, y, seed=seed)
    return {
        "max_abs_diff_vs_autograd": max_abs_difference(manual, autograd_gradients(net, x, y)),
        **{f"finite_differences_{k}": v for k, v in numeric.items()},
    }


# --------------------------------------------------------------------------- training
def accuracy(net: Network, x: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y, net.predict(x).argmax(axis=1)))


def train_sgd(
    net: Network,
    data: _mnist.Splits,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    rng: np.random.Generator,
    log: Callable[..., None],
    norm_every: int = 20,
) -> dict[str, Any]:
    """Mini-batch SGD: shuffle, then for each batch forward, backward, step. Records the
    mean training loss and the validation loss/accuracy of every epoch (and reports them:
    ``log(epoch, epochs, **values)``), and every ``norm_every`` steps the L2 norm of each
    Dense layer's dL/dW."""
    history: dict[str, Any] = {
        "train_loss": [],
        "val_loss": [],
        "val_accuracy": [],
        "steps": [],
        "grad_norms": {},
        "steps_per_epoch": -(-len(data.y_train) // batch_size),
    }
    step = 0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(data.y_train))
        losses = []
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            losses.append(net.loss(data.x_train[batch], data.y_train[batch]))
            net.backward()
            if step % norm_every == 0:
                _record_norms(net, history, step)
            net.sgd_step(lr)
            step += 1
        history["train_loss"].append(float(np.mean(losses)))
        history["val_loss"].append(net.criterion.forward(net.predict(data.x_val), data.y_val))
        history["val_accuracy"].append(accuracy(net, data.x_val, data.y_val))
        log(epoch, epochs, **{k: history[k][-1] for k in ("train_loss", "val_loss")})
    return history


def _record_norms(net: Network, history: dict[str, Any], step: int) -> None:
    history["steps"].append(step)
    for k, (_, layer) in enumerate(net.dense(), start=1):
        name = f"layer {k} ({layer.W.shape[1]}->{layer.W.shape[0]})"
        history["grad_norms"].setdefault(name, []).append(float(np.linalg.norm(layer.dW)))


# --------------------------------------------------------------------------- the run
# (layer sizes, activation, learning rate): both deep nets share one learning rate, so that
# the only difference between them is the activation (and its matching init).
NETWORKS = {
    "shallow_sigmoid": ([784, 128, 10], "sigmoid", 0.5),
    "deep_sigmoid": ([784, 128, 128, 128, 128, 128, 10], "sigmoid", 0.1),
    "deep_relu": ([784, 128, 128, 128, 128, 128, 10], "relu", 0.1),
}


def train_and_check(
    data: _mnist.Splits,
    *,
    sizes: list[int],
    activation: str,
    lr: float,
    epochs: int,
    seed: int,
    log: Callable[..., None],
    batch_size: int = 64,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check the gradients of a new network, train it, check them again; (results, history).
    The checks use 32 validation images."""
    rng = np.random.default_rng(seed)
    net = Network(sizes, activation, rng)
    check_x, check_y = data.x_val[:32], data.y_val[:32]
    before = check_gradients(net, check_x, check_y, seed)
    history = train_sgd(net, data, epochs=epochs, lr=lr, batch_size=batch_size, rng=rng, log=log)
    after = check_gradients(net, check_x, check_y, seed)
    first, last = _layer_norms(history, 0), _layer_norms(history, epochs - 1)
    return {
        "sizes": sizes,
        "activation": activation,
        "lr": lr,
        "batch_size": batch_size,
        "epochs": epochs,
        "test_accuracy": accuracy(net, data.x_test, data.y_test),
        "final_val_accuracy": history["val_accuracy"][-1],
        "gradient_check_at_init": before,
        "gradient_check_trained": after,
        "history": {k: history[k] for k in ("train_loss", "val_loss", "val_accuracy")},
        "grad_norm_per_layer": {"first_epoch": first, "last_epoch": last},
        "first_over_last_layer_grad_norm_first_epoch": first[0] / first[-1],
    }, history


def _layer_norms(history: dict[str, Any], epoch: int) -> list[float]:
    """Mean ||dL/dW|| of each Dense layer over epoch ``epoch`` (0-based), first layer first."""
    inside = np.asarray(history["steps"]) // history["steps_per_epoch"] == epoch
    return [float(np.mean(np.asarray(v)[inside])) for v in history["grad_norms"].values()]


def run(ctx: RunContext) -> None:
    data = _mnist.load_splits(ctx)
    ctx.data(**data.sizes())
    epochs = ctx.epochs_or(20, 1)
    results, histories = {}, {}
    for name, (sizes, activation, lr) in NETWORKS.items():
        results[name], histories[name] = train_and_check(
            data,
            sizes=sizes,
            activation=activation,
            lr=lr,
            epochs=epochs,
            seed=ctx.seed,
            log=functools.partial(ctx.epoch, name),
        )
    checks = [
        r[when]
        for r in results.values()
        for when in ("gradient_check_at_init", "gradient_check_trained")
    ]
    ctx.record(
        **results,
        max_abs_diff_vs_autograd=max(c["max_abs_diff_vs_autograd"] for c in checks),
        max_rel_err_vs_finite_differences=max(c["finite_differences_max_rel_err"] for c in checks),
        max_abs_err_vs_finite_differences=max(c["finite_differences_max_abs_err"] for c in checks),
    )
    _figures(ctx, histories, results, epochs)


def _figures(
    ctx: RunContext, histories: dict[str, Any], results: dict[str, Any], epochs: int
) -> None:
    x = np.arange(1, epochs + 1)
    line_plot(
        {
            f"{name} {split}": (x, h[f"{split}_loss"])
            for name, h in histories.items()
            for split in ("train", "val")
        },
        ctx.figure("learning_curves_loss"),
        "epoch",
        "cross-entropy",
        title="hand-written backprop: loss",
        logy=True,
    )
    line_plot(
        {name: (x, h["val_accuracy"]) for name, h in histories.items()},
        ctx.figure("learning_curves_accuracy"),
        "epoch",
        "validation accuracy",
        title="hand-written backprop: validation accuracy",
    )
    for name in ("deep_sigmoid", "deep_relu"):
        gradient_norms(
            histories[name]["steps"],
            histories[name]["grad_norms"],
            ctx.figure(f"grad_norms_{name}"),
            title=f"{name}: ||dL/dW|| per layer",
        )
    by_layer = {
        f"{name}, epoch {epoch}": (np.arange(1, len(norms) + 1), norms)
        for name in ("deep_sigmoid", "deep_relu")
        for epoch, norms in (
            (1, results[name]["grad_norm_per_layer"]["first_epoch"]),
            (epochs, results[name]["grad_norm_per_layer"]["last_epoch"]),
        )
    }
    line_plot(
        by_layer,
        ctx.figure("grad_norm_by_layer"),
        "layer (1 = next to the input)",
        "mean ||dL/dW|| over the epoch",
        title="vanishing gradients: sigmoid vs ReLU",
        logy=True,
    )
    shallow = histories["shallow_sigmoid"]
    learning_curves(
        {k: shallow[k] for k in ("train_loss", "val_loss", "val_accuracy")},
        ctx.figure("learning_curves_shallow"),
        title="shallow_sigmoid",
    )
