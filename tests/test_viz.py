"""Every figure function writes a real PNG (and leaves no temporary file behind)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from figure_checks import layout_problems

from minidl import viz

PNG = b"\x89PNG\r\n\x1a\n"


def _check(path):
    with open(path, "rb") as f:
        assert f.read(8) == PNG
    assert not list(path.parent.glob("*.tmp*"))


def test_every_figure_kind(tmp_path):
    rng = np.random.default_rng(0)
    paths = [
        viz.learning_curves(
            {"train_loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "val_accuracy": [0.5, 0.8]},
            tmp_path / "sub" / "curves.png",
        ),
        viz.confusion_matrix(np.array([[5, 1], [2, 7]]), ["a", "b"], tmp_path / "cm.png"),
        viz.image_grid(
            rng.random((5, 1, 8, 8)), tmp_path / "grid.png", ncol=3, titles=list("abcde")
        ),
        viz.image_grid(rng.random((4, 3, 8, 8)), tmp_path / "rgb.png"),
        viz.latent_scatter(
            rng.standard_normal((50, 2)), rng.integers(0, 3, 50), tmp_path / "latent.png"
        ),
        viz.gradient_norms(
            [0, 10, 20], {"w1": [1.0, 0.5, 0.2], "w2": [0.1, 0.1, 0.05]}, tmp_path / "norms.png"
        ),
        viz.histograms(
            {"w1": rng.standard_normal(100), "w2": rng.random(50)}, tmp_path / "hist.png"
        ),
        viz.line_plot({"a": ([1, 2, 3], [3, 2, 1])}, tmp_path / "line.png", "x", "y", logx=True),
    ]
    for path in paths:
        _check(Path(path))


@pytest.fixture
def checked(monkeypatch):
    """Run the layout check on every figure as it is saved; the list of problems found."""
    from matplotlib.figure import Figure

    problems: list[str] = []
    original = Figure.savefig

    def savefig(fig, fname, *args, **kwargs):
        problems.extend(f"{fname}: {p}" for p in layout_problems(fig))
        return original(fig, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return problems


def test_every_figure_kind_has_no_overlapping_text_and_labelled_axes(tmp_path, checked):
    test_every_figure_kind(tmp_path)
    rng = np.random.default_rng(1)
    # The crowded cases: one epoch (ticks), ten classes, long class names, titled grids.
    viz.learning_curves({"train_loss": [0.5], "val_loss": [0.6]}, tmp_path / "one.png", "one")
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", *"56789"]
    viz.confusion_matrix(rng.integers(0, 500, (10, 10)), names, tmp_path / "cm10.png", "ten")
    viz.image_grid(
        rng.random((16, 8, 8)),
        tmp_path / "titled.png",
        ncol=8,
        titles=[f"Ankle boot\n-> Sneaker {i}" for i in range(16)],
        title="misclassified",
    )
    viz.image_grid(
        rng.random((10, 8, 8)),
        tmp_path / "row.png",
        ncol=10,
        titles=list("0123456789"),
        title="a long title over a single row of images",
    )
    assert not checked, "\n".join(checked)


@pytest.mark.parametrize("epochs", [1, 2, 3, 7, 40])
def test_epoch_axes_have_whole_number_ticks(epochs):
    plt = viz.pyplot()
    fig, ax = plt.subplots()
    ax.plot(np.arange(1, epochs + 1), np.ones(epochs), marker=".")
    viz.plots.integer_ticks(ax.xaxis)
    fig.canvas.draw()
    low, high = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if low <= t <= high]
    plt.close(fig)
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_the_layout_check_finds_overlaps_and_missing_labels(tmp_path):
    plt = viz.pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(3, 2))
    left.plot([0, 1], [0, 1])
    right.plot([0, 1], [0, 1])
    left.set(xlabel="x", ylabel="y")
    left.set_title("a title much wider than its panel")
    right.set_title("and its neighbour, just as wide")
    right.set_ylabel("y")
    problems = layout_problems(fig)
    plt.close(fig)
    assert any("overlaps" in p for p in problems)
    assert any("runs over the panel" in p for p in problems)
    assert any("has no x label" in p for p in problems)
