"""A variational autoencoder on MNIST (Kingma & Welling 2014; the PyTorch example's
784-400-20 network), and the same with a 2-D latent to draw the latent space.

The encoder gives a Gaussian q(z|x) = N(mu(x), diag(exp(logvar(x)))) over a 20-D code; the
decoder gives each pixel's Bernoulli probability p(x|z). Training maximises the evidence
lower bound (ELBO) of log p(x), i.e. minimises, per image,

    -ELBO(x) = E_q[-log p(x|z)]            (reconstruction: BCE summed over 784 pixels)
             + KL(q(z|x) || N(0, I))        (closed form: -1/2 sum(1 + logvar - mu^2 - e^logvar))

with one reparameterised sample z = mu + exp(logvar / 2) * eps, eps ~ N(0, I), per image,
so that the gradient reaches the encoder through the sample. The loop below is written out
because it is the lesson: forward, the two terms, their sum, backward, step.

Reported: the test negative ELBO in nats per image (an upper bound on -log p(x)) and its two
terms after every epoch, the KL of each latent dimension (how many carry information), and
for the 2-D model the same numbers. Figures: the terms over training, samples from the
prior, a latent traversal of a test image's code, and for the 2-D model the test set's
posterior means coloured by digit and the decoded grid over the latent plane.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.data import DataLoader, TensorDataset
from minidl.distributions import Normal
from minidl.nn import functional as F
from projects import _generative as gen
from projects.runner import RunContext

DESCRIPTION = "MNIST: VAE 784-400-20 (and 2-D), test negative ELBO, samples, latent space"
DATA = gen.FILES["mnist"]
EPOCHS = 20
BATCH = 128
LR = 1e-3
TRAVERSAL = np.linspace(-3, 3, 9, dtype=np.float32)


class VAE(nn.Module):
    """x (N, 784) -> 400 (ReLU) -> mu, logvar (N, latent);  z (N, latent) -> 400 (ReLU) ->
    784 pixel probabilities (sigmoid)."""

    def __init__(self, latent: int = 20, hidden: int = 400) -> None:
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(784, hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(
            nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, 784), nn.Sigmoid()
        )

    def encode(self, x: md.Tensor) -> tuple[md.Tensor, md.Tensor]:
        h = self.hidden(x)
        return self.mu(h), self.logvar(h)

    def forward(self, x: md.Tensor) -> tuple[md.Tensor, md.Tensor, md.Tensor]:
        """x (N, 784) -> (reconstruction probabilities (N, 784), mu, logvar)."""
        mu, logvar = self.encode(x)
        z = Normal(mu, (0.5 * logvar).exp()).rsample()  # the reparameterisation trick
        return self.decoder(z), mu, logvar


def elbo_terms(
    probs: md.Tensor, x: md.Tensor, mu: md.Tensor, logvar: md.Tensor
) -> tuple[md.Tensor, md.Tensor]:
    """(reconstruction, KL) in nats per image: BCE summed over pixels, KL summed over the
    latent dimensions, both averaged over the batch."""
    reconstruction = F.binary_cross_entropy(probs, x, reduction="sum") / len(x)
    return reconstruction, F.gaussian_kl(mu, logvar, reduction="batchmean")


def evaluate_terms(model: VAE, x: np.ndarray) -> dict[str, Any]:
    """Mean reconstruction and KL over ``x`` (one z per image), their sum, and the KL of
    each latent dimension."""
    model.eval()
    totals, per_dim = np.zeros(2), 0.0
    with md.no_grad():
        for batch in gen.batches(x):
            probs, mu, logvar = model(batch)
            terms = elbo_terms(probs, batch, mu, logvar)
            totals += [t.item() * len(batch) for t in terms]
            per_dim = per_dim + F.gaussian_kl(mu, logvar, reduction="none").numpy().sum(0)
    model.train()
    reconstruction, kl = totals / len(x)
    return {
        "neg_elbo": reconstruction + kl,
        "reconstruction": reconstruction,
        "kl": kl,
        "kl_per_dim": per_dim / len(x),
    }


def train_vae(
    latent: int,
    x_train: np.ndarray,
    x_test: np.ndarray,
    epochs: int,
    seed: int,
    log: Callable[..., None],
) -> tuple[VAE, dict[str, list[float]], float]:
    """The VAE of ``latent`` dimensions trained with Adam on the negative ELBO; returns the
    model, the per-epoch train and test terms and the training time. Each epoch is
    reported: ``log(epoch, epochs, test_neg_elbo=...)``."""
    md.manual_seed(seed)
    model = VAE(latent)
    optimizer = optim.Adam(model.parameters(), lr=LR)
    train = DataLoader(TensorDataset(x_train), batch_size=BATCH, shuffle=True, generator=seed)
    names = ("train_reconstruction", "train_kl", "test_reconstruction", "test_kl", "test_neg_elbo")
    history: dict[str, list[float]] = {k: [] for k in names}
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        sums, seen = np.zeros(2), 0
        for (batch,) in train:
            x = md.tensor(batch)
            probs, mu, logvar = model(x)
            reconstruction, kl = elbo_terms(probs, x, mu, logvar)
            loss = reconstruction + kl  # the negative ELBO per image
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            sums += [reconstruction.item() * len(x), kl.item() * len(x)]
            seen += len(x)
        test = evaluate_terms(model, x_test)
        history["train_reconstruction"].append(sums[0] / seen)
        history["train_kl"].append(sums[1] / seen)
        for key in ("reconstruction", "kl", "neg_elbo"):
            history[f"test_{key}"].append(test[key])
        log(epoch, epochs, test_neg_elbo=test["neg_elbo"])
    return model, history, time.perf_counter() - start


def run(ctx: RunContext) -> None:
    # ------------------------------------------------------------------ data
    images, _, _ = gen.load_unit_images("mnist", "train", ctx.subset(60000, 1000))
    test_images, y_test, classes = gen.load_unit_images("mnist", "test", ctx.subset(10000, 500))
    x_train, x_test = images.reshape(-1, 784), test_images.reshape(-1, 784)
    epochs = ctx.epochs_or(EPOCHS, 1)
    ctx.data(train=len(x_train), test=len(x_test))

    # ------------------------------------------------------------------ train both models
    results: dict[str, Any] = {}
    models: dict[int, VAE] = {}
    for latent in (20, 2):
        log = functools.partial(ctx.epoch, f"VAE latent {latent}")
        model, history, seconds = train_vae(latent, x_train, x_test, epochs, ctx.seed, log)
        md.manual_seed(ctx.seed)  # the test estimate's eps draws, reproducible
        test = evaluate_terms(model, x_test)
        models[latent] = model
        results[f"latent_{latent}"] = {
            "parameters": sum(p.numel() for p in model.parameters()),
            "train_time_s": seconds,
            "test_neg_elbo": test["neg_elbo"],
            "test_reconstruction": test["reconstruction"],
            "test_kl": test["kl"],
            "kl_per_dim": test["kl_per_dim"],
            "active_dims": int((test["kl_per_dim"] > 0.01).sum()),
            "history": history,
        }
    ctx.record(
        sizes={"train": len(x_train), "test": len(x_test)},
        epochs=epochs,
        batch_size=BATCH,
        lr=LR,
        models=results,
        test_neg_elbo=results["latent_20"]["test_neg_elbo"],
        test_neg_elbo_2d=results["latent_2"]["test_neg_elbo"],
    )

    # ------------------------------------------------------------------ figures
    _terms_figure(ctx, results, epochs)
    model = models[20].eval()
    with md.no_grad():
        samples = model.decoder(md.randn(64, 20)).numpy()
    gen.mosaic(
        samples,
        ctx.figure("prior_samples"),
        ncol=8,
        title="64 samples from the prior: z ~ N(0, I), decoded (20-D VAE)",
    )
    _traversal_figure(ctx, model, x_test[0], results["latent_20"]["kl_per_dim"])
    flat = models[2].eval()
    z_mean = gen.map_batches(lambda b: flat.encode(b)[0], x_test)
    gen.latent_scatter(
        z_mean,
        y_test,
        classes,
        ctx.figure("latent_scatter_2d"),
        title=f"2-D VAE: posterior means of {len(x_test)} test digits",
    )
    gen.latent_plane(
        flat.decoder,
        ctx.figure("latent_plane_2d"),
        title="2-D VAE: decoded images over z1, z2 in [-2.5, 2.5]",
    )


def _terms_figure(ctx: RunContext, results: dict[str, Any], epochs: int) -> None:
    steps = np.arange(1, epochs + 1)
    panels: dict[str, dict[str, tuple[Any, Any]]] = {}
    for term, title in (
        ("reconstruction", "reconstruction (BCE summed over pixels)"),
        ("kl", "KL(q(z|x) || N(0, I))"),
    ):
        panels[title] = {
            f"{part}, {latent}-D latent": (
                steps,
                results[f"latent_{latent}"]["history"][f"{part}_{term}"],
            )
            for latent in (20, 2)
            for part in ("train", "test")
        }
    gen.curves(
        panels,
        ctx.figure("elbo_terms"),
        xlabel="epoch",
        ylabel="nats per image",
        title="MNIST VAE: the two terms of the negative ELBO over training",
    )


def _traversal_figure(ctx: RunContext, model: VAE, image: np.ndarray, kl: np.ndarray) -> None:
    """Rows: the latent dimensions by decreasing KL; columns: that dimension set to -3 ... 3
    with the others at the test image's posterior mean."""
    with md.no_grad():
        mu = model.encode(md.tensor(image[None]))[0].numpy()[0]
    rows = {}
    for d in np.argsort(-kl):
        codes = np.repeat(mu[None], len(TRAVERSAL), axis=0)
        codes[:, d] = TRAVERSAL
        with md.no_grad():
            rows[f"z{d} (KL {kl[d]:.2f})"] = model.decoder(md.tensor(codes)).numpy()
    gen.image_rows(
        {"test image": image[None], **rows},
        ctx.figure("latent_traversal"),
        title="Latent traversal: one dimension from -3 to 3, the others at the test image's code",
        columns=[f"{v:+.2f}" for v in TRAVERSAL],
        column_label="value of the traversed dimension",
    )
