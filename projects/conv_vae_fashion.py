"""A convolutional variational autoencoder with a 2-D latent on Fashion-MNIST, after the
Keras example "Variational AutoEncoder" (fchollet): stride-2 Conv2d encoder, ConvTranspose2d
decoder, z in R^2 so the whole latent space can be drawn.

The encoder maps an image x to a Gaussian q(z|x) = N(mu(x), diag(exp(logvar(x)))); a code is
drawn with the reparameterisation trick, z = mu + exp(logvar / 2) * eps, eps ~ N(0, I), so the
sample is a differentiable function of mu and logvar; the decoder gives Bernoulli
probabilities p(x|z) = sigmoid(logits) per pixel. Training minimises the negative evidence
lower bound per image,

    -ELBO(x) = E_q[-log p(x|z)] + KL(q(z|x) || N(0, I))
             = sum over the 784 pixels of BCE(x, sigmoid(logits))  +  sum over z of KL,

estimated with one z per image. The two terms pull in opposite ways: the reconstruction
term wants codes far apart and precise, the KL term wants every q(z|x) close to N(0, I).
Reported on the 10,000 test images: the negative ELBO and its two terms, in nats per image.
Figures: the test set's posterior means coloured by class, reconstructions, the decoded
20 x 20 grid over the latent plane, and the two terms over training.
"""

from __future__ import annotations

import time

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.data import DataLoader, TensorDataset
from minidl.distributions import Normal
from minidl.nn import functional as F
from projects import _generative as gen
from projects.runner import RunContext

DESCRIPTION = "Fashion-MNIST: convolutional VAE with a 2-D latent (Keras example), ELBO terms"
DATA = gen.FILES["fashion-mnist"]
LATENT = 2
EPOCHS = 15
BATCH = 128
LR = 1e-3


class ConvVAE(nn.Module):
    """Encoder: (N, 1, 28, 28) -> conv 3x3/2 (32) -> conv 3x3/2 (64) -> 3136 -> 16 ->
    (mu, logvar), each (N, latent). Decoder: z (N, latent) -> 3136 = (64, 7, 7) ->
    transposed conv 3x3/2 (32, 14x14) -> transposed conv 3x3/2 (1, 28x28): pixel logits."""

    def __init__(self, latent: int = LATENT) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 3, stride=2, padding=1),  # 28 -> 14
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),  # 14 -> 7
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 16),
            nn.ReLU(),
        )
        self.mu = nn.Linear(16, latent)
        self.logvar = nn.Linear(16, latent)
        self.decoder = nn.Sequential(
            nn.Linear(latent, 64 * 7 * 7),
            nn.ReLU(),
            nn.Unflatten(1, (64, 7, 7)),
            nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1),  # 7 -> 14
            nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 3, stride=2, padding=1, output_padding=1),  # 14 -> 28
        )

    def encode(self, x: md.Tensor) -> tuple[md.Tensor, md.Tensor]:
        h = self.encoder(x)
        return self.mu(h), self.logvar(h)

    def forward(self, x: md.Tensor) -> tuple[md.Tensor, md.Tensor, md.Tensor]:
        """x (N, 1, 28, 28) -> (pixel logits (N, 1, 28, 28), mu, logvar)."""
        mu, logvar = self.encode(x)
        z = Normal(mu, (0.5 * logvar).exp()).rsample()
        return self.decoder(z), mu, logvar


def elbo_terms(
    logits: md.Tensor, x: md.Tensor, mu: md.Tensor, logvar: md.Tensor
) -> tuple[md.Tensor, md.Tensor]:
    """(reconstruction, KL), each in nats per image: the BCE summed over the pixels and
    the KL summed over the latent dimensions, both averaged over the batch."""
    reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
    return reconstruction, F.gaussian_kl(mu, logvar, reduction="batchmean")


def evaluate_terms(model: ConvVAE, x: np.ndarray) -> dict[str, float]:
    """The mean reconstruction and KL terms and their sum over ``x`` (one z per image)."""
    model.eval()
    totals = np.zeros(2)
    with md.no_grad():
        for batch in gen.batches(x):
            logits, mu, logvar = model(batch)
            terms = elbo_terms(logits, batch, mu, logvar)
            totals += [t.item() * len(batch) for t in terms]
    model.train()
    reconstruction, kl = totals / len(x)
    return {"neg_elbo": reconstruction + kl, "reconstruction": reconstruction, "kl": kl}


def run(ctx: RunContext) -> None:
    # ------------------------------------------------------------------ data
    x_train, _, _ = gen.load_unit_images("fashion-mnist", "train", ctx.subset(60000, 1000))
    x_test, y_test, classes = gen.load_unit_images("fashion-mnist", "test", ctx.subset(10000, 500))
    train = DataLoader(TensorDataset(x_train), batch_size=BATCH, shuffle=True, generator=ctx.seed)
    ctx.data(train=len(x_train), test=len(x_test))

    # ------------------------------------------------------------------ model, optimiser
    model = ConvVAE(LATENT)
    optimizer = optim.Adam(model.parameters(), lr=LR)

    # ------------------------------------------------------------------ the ELBO loop
    epochs = ctx.epochs_or(EPOCHS, 1)
    terms = ("train_reconstruction", "train_kl", "test_reconstruction", "test_kl")
    history: dict[str, list[float]] = {k: [] for k in terms}
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        sums, seen = np.zeros(2), 0
        for (batch,) in train:
            x = md.tensor(batch)
            logits, mu, logvar = model(x)
            reconstruction, kl = elbo_terms(logits, x, mu, logvar)
            loss = reconstruction + kl  # the negative ELBO per image
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            sums += [reconstruction.item() * len(x), kl.item() * len(x)]
            seen += len(x)
        test = evaluate_terms(model, x_test)
        history["train_reconstruction"].append(sums[0] / seen)
        history["train_kl"].append(sums[1] / seen)
        history["test_reconstruction"].append(test["reconstruction"])
        history["test_kl"].append(test["kl"])
        ctx.epoch("conv VAE", epoch, epochs, test_neg_elbo=test["neg_elbo"], test_kl=test["kl"])
    train_time = time.perf_counter() - start

    # ------------------------------------------------------------------ evaluation
    md.manual_seed(ctx.seed)  # the test estimate's eps draws, reproducible
    test = evaluate_terms(model, x_test)
    model.eval()
    z_mean = gen.map_batches(lambda b: model.encode(b)[0], x_test)

    # ------------------------------------------------------------------ reporting
    ctx.record(
        sizes={"train": len(x_train), "test": len(x_test)},
        epochs=epochs,
        batch_size=BATCH,
        lr=LR,
        parameters=sum(p.numel() for p in model.parameters()),
        train_time_s=train_time,
        test_neg_elbo=test["neg_elbo"],
        test_reconstruction=test["reconstruction"],
        test_kl=test["kl"],
        history=history,
    )
    steps = np.arange(1, epochs + 1)
    gen.curves(
        {
            "reconstruction (BCE summed over pixels)": {
                "train": (steps, history["train_reconstruction"]),
                "test": (steps, history["test_reconstruction"]),
            },
            "KL(q(z|x) || N(0, I))": {
                "train": (steps, history["train_kl"]),
                "test": (steps, history["test_kl"]),
            },
        },
        ctx.figure("elbo_terms"),
        xlabel="epoch",
        ylabel="nats per image",
        title="Fashion-MNIST conv VAE: the two terms of the negative ELBO",
    )
    gen.latent_scatter(
        z_mean,
        y_test,
        classes,
        ctx.figure("latent_scatter"),
        title=f"test images in the 2-D latent space ({len(x_test)} posterior means)",
    )
    show = x_test[:12]
    with md.no_grad():
        decoded = F.sigmoid(model.decoder(md.tensor(z_mean[:12]))).numpy()
    gen.image_rows(
        {"test image": show, "reconstruction": decoded},
        ctx.figure("reconstructions"),
        title="Fashion-MNIST: test images and their reconstructions from the posterior mean",
    )
    gen.latent_plane(
        lambda z: F.sigmoid(model.decoder(z)),
        ctx.figure("latent_plane"),
        title="decoded images over the latent plane z1, z2 in [-2.5, 2.5]",
    )
