"""Figures with matplotlib (Agg backend, PNG files): learning curves, confusion matrices,
image grids, latent-space scatter, gradient-norm curves, weight/activation histograms."""

from minidl.viz.plots import (
    confusion_matrix,
    gradient_norms,
    histograms,
    image_grid,
    latent_scatter,
    learning_curves,
    line_plot,
    pyplot,
    save_figure,
)

__all__ = [
    "confusion_matrix",
    "gradient_norms",
    "histograms",
    "image_grid",
    "latent_scatter",
    "learning_curves",
    "line_plot",
    "pyplot",
    "save_figure",
]
