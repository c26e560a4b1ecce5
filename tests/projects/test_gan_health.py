"""The GAN divergence check of projects/_generative.py on constructed histories."""

from __future__ import annotations

import math

from projects import _generative as gen
from projects.runner import RunContext


def healthy() -> dict[str, list[float]]:
    return {
        "d_loss": [1.2, 1.1, 1.3],
        "g_loss": [0.9, 1.0, 0.8],
        "d_acc_real": [0.7, 0.8, 0.75],
        "d_acc_fake": [0.6, 0.7, 0.8],
    }


def test_a_healthy_run_is_not_diverged():
    assert gen.divergence(healthy()) is None
    assert gen.divergence({"d_loss": [], "d_acc_real": [], "d_acc_fake": []}) is None


def test_a_nan_or_infinite_loss_is_divergence():
    history = healthy()
    history["g_loss"].append(math.nan)
    assert gen.divergence(history) == "g_loss is nan"
    history = healthy()
    history["d_loss"].append(math.inf)
    assert gen.divergence(history, accuracies=()) == "d_loss is inf"


def test_accuracy_pinned_on_real_and_fake_for_patience_checks():
    history = healthy()
    history["d_acc_real"] += [1.0, 1.0]
    history["d_acc_fake"] += [0.995, 1.0]
    reason = gen.divergence(history, patience=2)
    assert reason is not None and "pinned" in reason and "d_acc_fake >= 0.99" in reason
    # one pinned check is a spike, not divergence; nor is a discriminator that wins only on real
    assert gen.divergence(history, patience=3) is None
    history["d_acc_fake"][-2] = 0.9
    assert gen.divergence(history, patience=2) is None
    # a critic without accuracies (WGAN) is judged on its losses alone
    assert gen.divergence({"critic_loss": [-3.0, -5.0]}, accuracies=()) is None


def test_divergence_is_recorded_with_its_epoch(tmp_path):
    ctx = RunContext("gan", tmp_path, quiet=True)
    gen.record_divergence(ctx, "lambda_0", 4, "g_loss is nan")
    assert ctx.results["diverged"] == {"lambda_0": {"epoch": 4, "reason": "g_loss is nan"}}
