"""dcgan: the quick run on both data sets, a forced divergence detected and never written
up, the training-health rules, the mode-collapse measures on constructed inputs, and the
networks' shapes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import minidl as md
from minidl.data import data_root
from projects import _gan, dcgan
from projects import _generative as gen
from projects.runner import run_project

needs_data = pytest.mark.skipif(
    not gen.available("fashion-mnist")
    or not (data_root() / "medmnist" / "pneumoniamnist.npz").is_file(),
    reason="Fashion-MNIST or PneumoniaMNIST is not under MINIDL_DATA",
)
pytestmark = pytest.mark.filterwarnings("ignore:.*is not the published")


@needs_data
def test_quick_run_on_both_data_sets(tmp_path):
    run_project("dcgan", out=tmp_path, quick=True, quiet=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert set(report["data"]) == set(dcgan.DATA)
    for dataset in dcgan.DATASETS:
        result = report["results"][dataset]
        assert result["health"]["status"] == "healthy"
        assert result["fid_n"] == dcgan.QUICK["final_fid_n"]
        assert result["fid"] > 0 and result["fid_floor_real_vs_real"] >= 0
        assert result["fid_curve"]["epoch"] == [0, 1] and len(result["fid_curve"]["fid"]) == 2
        history = result["history"]
        assert all(0 <= a <= 1 for a in history["acc_real"] + history["acc_fake"])
        collapse = result["mode_collapse"]
        assert sum(collapse["generated_histogram"]) == collapse["n"]
        assert 0 <= collapse["generated"]["kl"] <= collapse["max_kl"] + 1e-9
        for kind in ("training", "fixed_noise", "samples", "class_histogram"):
            assert (tmp_path / f"{dataset}_{kind}.png").stat().st_size > 1000


@needs_data
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow that is the point
def test_a_diverged_run_is_reported_with_its_epoch_and_no_result(tmp_path, monkeypatch, capsys):
    """A learning rate of 1e30 sends the weights to inf within a step: the losses turn NaN,
    the run stops at epoch 1 and says so; no FID, mode-collapse check or samples."""
    monkeypatch.setattr(dcgan, "DATASETS", {"fashion-mnist": dcgan.DATASETS["fashion-mnist"]})
    monkeypatch.setitem(dcgan.QUICK, "lr", 1e30)
    monkeypatch.setitem(dcgan.QUICK, "epochs", 3)
    run_project("dcgan", out=tmp_path, quick=True)
    result = json.loads((tmp_path / "metrics.json").read_text())["results"]["fashion-mnist"]
    assert result["health"]["status"] == "diverged" and result["health"]["epoch"] == 1
    assert "not finite" in result["health"]["reason"]
    assert not {"fid", "mode_collapse"} & set(result)
    assert result["history"]["epoch"] == [1] and result["fid_curve"]["epoch"] == [0]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["fashion-mnist_training.png"]
    assert "DIVERGED at epoch 1" in capsys.readouterr().out


# --------------------------------------------------------------------------- health
def test_nan_or_inf_loss_is_divergence_at_that_epoch():
    health = _gan.TrainingHealth(patience=2)
    assert health.check(1, {"loss_d": [0.7, 0.6], "loss_g": [1.0, 0.9]}, 0.8, 0.7) is None
    reason = health.check(2, {"loss_d": [0.6, math.nan], "loss_g": [0.9, 1.0]}, 0.8, 0.7)
    assert "loss_d not finite" in reason and "step 2" in reason
    assert health.record()["status"] == "diverged" and health.record()["epoch"] == 2
    assert "not finite" in _gan.TrainingHealth(2).check(1, {"loss_g": [math.inf]})


def test_accuracy_pinned_at_one_for_patience_epochs_is_divergence():
    health = _gan.TrainingHealth(patience=3)
    losses = {"loss_d": [0.01], "loss_g": [6.0]}
    assert health.check(1, losses, 1.0, 1.0) is None
    assert health.check(2, losses, 1.0, 0.995) is None
    assert health.check(3, losses, 1.0, 0.9) is None  # fake accuracy drops: the count restarts
    assert health.check(4, losses, 0.999, 1.0) is None
    assert health.check(5, losses, 1.0, 1.0) is None
    reason = health.check(6, losses, 1.0, 1.0)
    assert "pinned at 1.0" in reason and "3 epochs" in reason and health.epoch == 6
    only_real = _gan.TrainingHealth(patience=1)
    assert only_real.check(1, losses, 1.0, 0.5) is None  # D wins on real only: not pinned
    assert _gan.TrainingHealth(1).record()["status"] == "healthy"


def test_finite_or_none_makes_json_values():
    assert _gan.finite_or_none([1.5, math.nan, -math.inf]) == [1.5, None, None]


# --------------------------------------------------------------------------- mode collapse
def test_all_one_class_gives_the_maximum_and_a_uniform_mix_gives_zero():
    k, n = 10, 1000
    uniform = np.full(k, 100)
    one_class = _gan.class_histogram(np.full(n, 3), k)
    worst = _gan.histogram_divergence(one_class, uniform)
    assert worst["kl"] == pytest.approx(math.log(k))
    assert worst["chi_square"] == pytest.approx(n * (k - 1))
    mixed = _gan.class_histogram(np.arange(n) % k, k)
    assert _gan.histogram_divergence(mixed, uniform) == {"kl": 0.0, "chi_square": 0.0}
    rng = np.random.default_rng(0)  # any other histogram lies in between
    for _ in range(20):
        counts = rng.multinomial(n, rng.dirichlet(np.ones(k)))
        kl = _gan.histogram_divergence(counts, uniform)["kl"]
        assert 0 <= kl <= math.log(k)
    with pytest.raises(ValueError, match="reference must be positive"):
        _gan.histogram_divergence(mixed, np.arange(k))


def test_near_duplicate_share_on_duplicated_inputs():
    rng = np.random.default_rng(0)
    distinct = rng.random((40, 1, 28, 28))
    assert _gan.near_duplicate_share(distinct) == 0.0
    copies = np.concatenate([distinct[:10]] * 3 + [distinct[10:]])  # 30 copies, 30 singles
    assert _gan.near_duplicate_share(copies) == pytest.approx(30 / 60)
    nudged = np.clip(distinct + rng.normal(0, 0.01, distinct.shape), 0, 1)
    both = np.concatenate([distinct, nudged])  # each image's twin is 0.01 RMS away
    assert _gan.near_duplicate_share(both) == 1.0
    assert _gan.near_duplicate_share(both, threshold=0.005) == 0.0


def test_nearest_rms_distance_against_brute_force():
    x = np.random.default_rng(1).random((25, 1, 6, 6))
    flat = x.reshape(25, -1)
    brute = [
        min(np.sqrt(np.mean((flat[i] - flat[j]) ** 2)) for j in range(25) if j != i)
        for i in range(25)
    ]
    assert _gan.nearest_rms_distance(x, chunk=7) == pytest.approx(brute, rel=1e-9)


# --------------------------------------------------------------------------- networks
def test_generator_and_discriminator_shapes():
    md.manual_seed(0)
    generator, discriminator = dcgan.Generator(), dcgan.Discriminator()
    generator.apply(dcgan.dcgan_init)
    images = generator(md.randn(5, dcgan.Z_DIM))
    assert images.shape == (5, 1, 28, 28)
    assert float(images.abs().max().item()) <= 1.0  # tanh output
    assert discriminator(images).shape == (5, 1)
    weight = generator.net[0].weight.numpy()
    assert abs(weight.std() - 0.02) < 0.002  # N(0, 0.02) after dcgan_init
