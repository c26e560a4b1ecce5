"""WGAN-GP (Gulrajani et al., 2017): dcgan's generator trained against a Wasserstein critic
with a gradient penalty, on Fashion-MNIST, at the same CPU budget as dcgan.

The critic f is not a classifier: it scores images, and by Kantorovich-Rubinstein duality

    W(P_real, P_G) = max over 1-Lipschitz f of  E_real[f(x)] - E_z[f(G(z))],

so the critic maximises that gap while the generator minimises -E_z[f(G(z))]. The
1-Lipschitz constraint is asked for softly: the optimal critic has gradient norm 1 almost
everywhere between the two distributions, so the critic's loss gets

    lambda * E_xhat[(|grad_xhat f(xhat)|_2 - 1)^2],  xhat = eps x_real + (1 - eps) x_fake,
    eps ~ U[0, 1] per sample,

a penalty on a gradient, whose own gradient with respect to the critic's weights is a
second derivative: ``minidl.autograd.grad(..., create_graph=True)`` records the first
backward pass so that ``loss.backward()`` can go through it. As in the paper: the critic
has no BatchNorm (the penalty is per sample, BatchNorm would mix samples), lambda = 10,
n_critic = 5 critic steps per generator step, Adam with lr 1e-4 and betas (0, 0.9).

Compared with dcgan on FID (same feature network, same N) and the mode-collapse check,
against training CPU seconds and wall seconds, not epochs: a WGAN-GP epoch makes a fifth
of the generator steps and pays for a double backward in every critic step. The critic's
output is unbounded, so a diverged run is one whose losses stop being finite (there is no
accuracy to pin at 1.0).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

import minidl as md
from minidl import autograd, nn, optim
from minidl.data import DataLoader, TensorDataset
from projects import _gan, dcgan
from projects import _generative as gen
from projects.dcgan import Generator, dcgan_init
from projects.runner import RunContext

DESCRIPTION = "WGAN-GP on Fashion-MNIST (dcgan's generator), FID against CPU time vs dcgan"
DATA = gen.FILES["fashion-mnist"]
DATASET = "fashion-mnist"
# dcgan's budget, FID N and mode-collapse N, so that the two runs compare at equal cost
CONFIG = {**dcgan.DATASETS[DATASET], "lr": 1e-4, "betas": (0.0, 0.9), "n_critic": 5,
          "gp_lambda": 10.0}  # fmt: skip


class Critic(nn.Module):
    """x (N, 1, 28, 28) in [-1, 1] -> Conv2d 4x4/2 -> (N, w, 14, 14) -> LeakyReLU(0.2)
    -> Conv2d 4x4/2 -> (N, 2w, 7, 7) -> LeakyReLU(0.2) -> Linear -> (N, 1) score.
    dcgan's discriminator without BatchNorm."""

    def __init__(self, width: int = dcgan.WIDTH) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(2 * width * 7 * 7, 1),
        )

    def forward(self, x: md.Tensor) -> md.Tensor:
        return self.net(x)


def gradient_penalty(
    critic: nn.Module, real: md.Tensor, fake: md.Tensor, eps: md.Tensor
) -> md.Tensor:
    """E[(|grad_xhat critic(xhat)|_2 - 1)^2] over the batch, xhat = eps real + (1 - eps) fake.

    real, fake: (N, C, H, W); eps: (N, 1, 1, 1) in [0, 1]. The gradient is taken with
    create_graph=True, so the penalty is differentiable with respect to the critic's
    weights (a second derivative). Summing the scores gives each sample's own gradient:
    sample i's score depends on xhat_i only."""
    xhat = (eps * real + (1 - eps) * fake).detach().requires_grad_(True)
    (grad,) = autograd.grad(critic(xhat).sum(), xhat, create_graph=True)
    norms = grad.flatten(1).norm(dim=1)
    return ((norms - 1) ** 2).mean()


def train(ctx: RunContext, data: dict[str, Any], net: nn.Module, config: dict) -> dict:
    """WGAN-GP until the CPU budget or epochs run out, or it diverges. An epoch is one pass
    of the critic over the training images (one real batch per critic step)."""
    epochs = ctx.epochs_or(config["epochs"], config["epochs"])
    rng = np.random.default_rng(ctx.seed)  # the same fixed and evaluation noise as dcgan
    fixed_z = rng.standard_normal((dcgan.FIXED_NOISE, dcgan.Z_DIM)).astype(np.float32)
    eval_z = rng.standard_normal((config["fid_n"], dcgan.Z_DIM)).astype(np.float32)
    fid_real = _gan.fid_stats(net.features, data["real"][: config["fid_n"]])

    G, critic = Generator(), Critic()
    G.apply(dcgan_init)
    opt_g = optim.Adam(G.parameters(), lr=config["lr"], betas=config["betas"])
    opt_c = optim.Adam(critic.parameters(), lr=config["lr"], betas=config["betas"])
    loader = DataLoader(TensorDataset(data["train"]), batch_size=dcgan.BATCH, shuffle=True,
                        drop_last=True, generator=ctx.seed)  # fmt: skip
    health = _gan.TrainingHealth(patience=config["patience"])
    keys = ("epoch", "loss_critic", "wasserstein", "penalty", "loss_g", "train_cpu_s",
            "train_wall_s")  # fmt: skip
    history: dict[str, list] = {k: [] for k in keys}
    fid_curve: dict[str, list] = {
        "epoch": [0], "train_cpu_s": [0.0], "train_wall_s": [0.0],
        "fid": [_gan.fid_against(fid_real, net.features, dcgan.sample(G, eval_z))],
    }  # fmt: skip
    grids = {"epoch 0": dcgan.sample(G, fixed_z)}
    cpu = wall = 0.0
    for epoch in range(1, epochs + 1):
        steps: dict[str, list[float]] = {k: [] for k in keys[1:5]}
        for i, (batch,) in enumerate(loader):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            real = md.tensor(batch)
            with md.no_grad():  # the critic step trains the critic only
                fake = G(md.randn(len(batch), dcgan.Z_DIM))
            gap = critic(real).mean() - critic(fake).mean()  # the Wasserstein estimate
            penalty = gradient_penalty(critic, real, fake, md.rand(len(batch), 1, 1, 1))
            loss_c = -gap + config["gp_lambda"] * penalty
            opt_c.zero_grad()
            loss_c.backward()  # through the penalty's gradient: a double backward
            opt_c.step()
            steps["loss_critic"].append(loss_c.item())
            steps["wasserstein"].append(gap.item())
            steps["penalty"].append(penalty.item())
            if (i + 1) % config["n_critic"] == 0:  # one generator step per n_critic
                loss_g = -critic(G(md.randn(dcgan.BATCH, dcgan.Z_DIM))).mean()
                opt_g.zero_grad()
                loss_g.backward()
                opt_g.step()
                steps["loss_g"].append(loss_g.item())
            cpu += time.process_time() - cpu0
            wall += time.perf_counter() - wall0
            if cpu >= config["budget_s"] or not np.isfinite(steps["loss_critic"][-1]):
                break
        means = {k: float(np.mean(v)) if v else float("nan") for k, v in steps.items()}
        for key, value in (("epoch", epoch), *means.items(), ("train_cpu_s", cpu),
                           ("train_wall_s", wall)):  # fmt: skip
            history[key].append(value)
        ctx.epoch("WGAN-GP", epoch, epochs, **means, train_cpu_s=cpu)
        if health.check(epoch, {k: steps[k] for k in ("loss_critic", "loss_g")}):
            ctx.log(f"DIVERGED at epoch {epoch}: {health.reason}; no result reported")
            break
        last = cpu >= config["budget_s"] or epoch == epochs
        if epoch % config["fid_every"] == 0 or last:
            fid_curve["fid"].append(
                _gan.fid_against(fid_real, net.features, dcgan.sample(G, eval_z))
            )
            for key, value in (("epoch", epoch), ("train_cpu_s", cpu), ("train_wall_s", wall)):
                fid_curve[key].append(value)
            grids[f"epoch {epoch}"] = dcgan.sample(G, fixed_z)
            ctx.log(f"FID {fid_curve['fid'][-1]:.2f} (N={config['fid_n']:,}) after epoch "
                    f"{epoch}, {cpu:.0f} CPU s of training")  # fmt: skip
        if last:
            break
    return {"G": G, "config": config, "history": history, "fid_curve": fid_curve,
            "grids": grids, "health": health}  # fmt: skip


def run(ctx: RunContext) -> None:
    data = dcgan.load(ctx, DATASET)
    net = dcgan.feature_network(ctx, DATASET, data)
    config = {**dcgan.QUICK, **{k: CONFIG[k] for k in ("lr", "betas", "n_critic", "gp_lambda")}}
    result = train(ctx, data, net, config if ctx.quick else CONFIG)
    report(ctx, data, net, result)


def report(ctx: RunContext, data: dict, net: nn.Module, run: dict) -> None:
    """metrics.json and figures; a diverged run gets its health record and curves only.
    The comparison with dcgan reads dcgan's metrics.json beside this run's folder
    (runs/dcgan/ for a full run) when it is there."""
    config, health = run["config"], run["health"]
    ctx.record(
        health=health.record(),
        config={**config, "batch": dcgan.BATCH, "z_dim": dcgan.Z_DIM, "width": dcgan.WIDTH},
        feature_network=getattr(net, "info", "trained on the --quick slice for one epoch"),
        history={k: _gan.finite_or_none(v) for k, v in run["history"].items()},
        fid_curve={**run["fid_curve"], "n": config["fid_n"]},
    )
    _gan.curves_figure(run["history"], run["fid_curve"], config["fid_n"],
                       ctx.figure("training"), "WGAN-GP on Fashion-MNIST",
                       middle=("critic", "mean over the epoch's critic steps"))  # fmt: skip
    if health.reason is not None:
        return
    final = dcgan.evaluate(ctx, DATASET, data, net, run)
    samples = final.pop("samples")
    ctx.record(**final)
    collapse = final["mode_collapse"]
    ctx.log(f"final FID {final['fid']:.2f} (N={final['fid_n']:,}; real vs real "
            f"{final['fid_floor_real_vs_real']:.2f}); mode collapse: KL "
            f"{collapse['generated']['kl']:.4f}, near-duplicates "
            f"{collapse['generated_near_duplicates']:.4f}")  # fmt: skip
    gen.image_rows(run["grids"], ctx.figure("fixed_noise"),
                   "WGAN-GP on Fashion-MNIST: one fixed noise batch over training")  # fmt: skip
    gen.mosaic(samples, ctx.figure("samples"), title="WGAN-GP: 100 samples at the end")
    title = f"WGAN-GP: classes of {collapse['n']:,} samples vs real images"
    _gan.histogram_figure(collapse, data["classes"], ctx.figure("class_histogram"), title)
    curves = {"WGAN-GP": run["fid_curve"]}
    other = dcgan_results(ctx)
    if other is not None:
        curves["DCGAN"] = other["fid_curve"]
        ctx.record(dcgan_compared={k: other.get(k) for k in ("fid", "fid_n", "mode_collapse")})
    _gan.fid_time_figure(curves, config["fid_n"], ctx.figure("fid_vs_time"),
                         "Fashion-MNIST: FID against training time at one budget")  # fmt: skip


def dcgan_results(ctx: RunContext) -> dict | None:
    """dcgan's Fashion-MNIST results from its metrics.json beside this run's folder
    (dcgan-quick/ for a quick run), if that run was made and did not diverge."""
    path = Path(ctx.out).parent / ("dcgan-quick" if ctx.quick else "dcgan") / "metrics.json"
    if not path.is_file():
        ctx.log(f"({path} not found: the FID-against-time figure shows WGAN-GP alone)")
        return None
    results = json.loads(path.read_text())["results"].get(DATASET, {})
    return results if results.get("health", {}).get("status") == "healthy" else None
