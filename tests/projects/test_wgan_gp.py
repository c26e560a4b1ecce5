"""wgan_gp: the quick run (with and without dcgan's results beside it), a forced
divergence, and the gradient penalty against finite differences: its value from the
critic's input gradient, and its gradient with respect to the critic's weights (the second
derivative that create_graph=True records)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minidl as md
from projects import _generative as gen
from projects import dcgan, wgan_gp
from projects.runner import run_project

needs_data = pytest.mark.skipif(
    not gen.available("fashion-mnist"), reason="Fashion-MNIST is not under MINIDL_DATA"
)


@needs_data
def test_quick_run_compares_with_dcgan_results_beside_it(tmp_path):
    curve = {"epoch": [0, 1], "train_cpu_s": [0.0, 2.0], "train_wall_s": [0.0, 3.0],
             "fid": [20.0, 10.0], "n": 200}  # fmt: skip
    dcgan_report = {"results": {"fashion-mnist": {
        "health": {"status": "healthy"}, "fid_curve": curve, "fid": 9.5, "fid_n": 200,
        "mode_collapse": {"n": 200}}}}  # fmt: skip
    (tmp_path / "dcgan-quick").mkdir()
    (tmp_path / "dcgan-quick" / "metrics.json").write_text(json.dumps(dcgan_report))
    out = tmp_path / "wgan_gp-quick"
    run_project("wgan_gp", out=out, quick=True, quiet=True)
    results = json.loads((out / "metrics.json").read_text())["results"]
    assert results["health"]["status"] == "healthy"
    assert results["config"]["n_critic"] == 5 and results["config"]["betas"] == [0.0, 0.9]
    assert results["fid_n"] == dcgan.QUICK["final_fid_n"] and results["fid"] > 0
    assert results["dcgan_compared"] == {"fid": 9.5, "fid_n": 200, "mode_collapse": {"n": 200}}
    history = results["history"]
    assert history["epoch"] == [1] and history["penalty"][0] >= 0
    # the critic loss is -W + lambda * penalty, averaged over the same steps
    assert history["loss_critic"][0] == pytest.approx(
        -history["wasserstein"][0] + 10 * history["penalty"][0], rel=1e-5
    )
    for name in ("training", "fixed_noise", "samples", "class_histogram", "fid_vs_time"):
        assert (out / f"{name}.png").stat().st_size > 1000


@needs_data
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow that is the point
def test_a_diverged_run_is_reported_and_not_written_up(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(wgan_gp.CONFIG, "lr", 1e30)
    monkeypatch.setitem(dcgan.QUICK, "epochs", 3)
    run_project("wgan_gp", out=tmp_path, quick=True)
    results = json.loads((tmp_path / "metrics.json").read_text())["results"]
    assert results["health"]["status"] == "diverged" and results["health"]["epoch"] == 1
    assert not {"fid", "mode_collapse", "dcgan_compared"} & set(results)
    assert [p.name for p in tmp_path.glob("*.png")] == ["training.png"]
    assert "DIVERGED at epoch 1" in capsys.readouterr().out


def tiny_critic(seed: int = 0) -> wgan_gp.Critic:
    md.manual_seed(seed)
    return wgan_gp.Critic(width=1).double()


def test_penalty_equals_finite_differences_of_the_critic():
    """The penalty from autograd equals ((|g| - 1)^2).mean() with g the central-difference
    gradient of the critic's score at each interpolate."""
    rng = np.random.default_rng(0)
    real, fake = rng.uniform(-1, 1, (2, 2, 1, 28, 28))
    eps = rng.uniform(0, 1, (2, 1, 1, 1))
    critic = tiny_critic()
    penalty = wgan_gp.gradient_penalty(critic, md.tensor(real), md.tensor(fake), md.tensor(eps))
    xhat = eps * real + (1 - eps) * fake
    h, norms = 1e-6, []
    with md.no_grad():
        for i in range(len(xhat)):
            flat = xhat[i].ravel()
            grad = np.empty_like(flat)
            for j in range(flat.size):
                step = np.zeros_like(flat)
                step[j] = h
                up = critic(md.tensor((flat + step).reshape(1, 1, 28, 28))).item()
                down = critic(md.tensor((flat - step).reshape(1, 1, 28, 28))).item()
                grad[j] = (up - down) / (2 * h)
            norms.append(np.linalg.norm(grad))
    expected = np.mean((np.array(norms) - 1) ** 2)
    assert penalty.item() == pytest.approx(expected, rel=1e-6)


def test_penalty_gradient_in_the_weights_equals_finite_differences():
    """d penalty / d weights through the recorded first backward (create_graph=True), against
    central differences of the penalty in each weight of the linear layer and a sample of
    the first conv's."""
    rng = np.random.default_rng(1)
    real, fake = (md.tensor(a) for a in rng.uniform(-1, 1, (2, 2, 1, 28, 28)))
    eps = md.tensor(rng.uniform(0, 1, (2, 1, 1, 1)))
    critic = tiny_critic(1)
    wgan_gp.gradient_penalty(critic, real, fake, eps).backward()
    h = 1e-6
    for layer, picks in ((critic.net[5], range(0, 98, 7)), (critic.net[0], range(16))):
        weight = layer.weight
        analytic = weight.grad.numpy().ravel()
        assert np.abs(analytic[list(picks)]).max() > 1e-6  # a check that can fail
        values = weight.data.reshape(-1)  # a view: writing it moves the weight
        for j in picks:
            old = values[j]
            values[j] = old + h
            up = wgan_gp.gradient_penalty(critic, real, fake, eps).item()
            values[j] = old - h
            down = wgan_gp.gradient_penalty(critic, real, fake, eps).item()
            values[j] = old
            assert analytic[j] == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-8)


def test_critic_has_no_batchnorm():
    assert not any("BatchNorm" in type(m).__name__ for m in wgan_gp.Critic().modules())
