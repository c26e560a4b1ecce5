"""Figures with matplotlib (Agg backend, PNG files): learning curves, confusion matrices,
image grids, latent-space scatter, gradient-norm curves, weight/activation histograms;
and the autograd graph as Graphviz DOT text (``draw_graph``), rendered by ``render_graph``."""

from minidl.viz.graph import draw_graph, graphviz_dot, render_graph
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
    "draw_graph",
    "gradient_norms",
    "graphviz_dot",
    "histograms",
    "image_grid",
    "latent_scatter",
    "learning_curves",
    "line_plot",
    "pyplot",
    "render_graph",
    "save_figure",
]
