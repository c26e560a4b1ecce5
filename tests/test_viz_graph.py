"""``draw_graph``: the DOT text has one node per op and per leaf, one edge per op input,
parameter names on the leaves, saved arrays and statistics on request; ``render_graph``
writes real SVG/PNG files where Graphviz is installed (skipped elsewhere) and says how to
install it where it is not."""

from __future__ import annotations

import re

import pytest

import minidl as md
import minidl.nn.functional as F
from minidl import nn, viz
from minidl.viz import graph as graph_module

NODE = re.compile(r'^  (n\d+) \[label="([^"]*(?:\\"[^"]*)*)", ')
EDGE = re.compile(r"^  (n\d+(?:_out)?) -> (n\d+(?:_out)?)")


def _parse(dot: str) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """Nodes (id -> label lines) and edges of the DOT text this module writes."""
    assert dot.startswith("digraph minidl {") and dot.rstrip().endswith("}")
    nodes, edges = {}, []
    for line in dot.splitlines():
        if m := NODE.match(line):
            nodes[m.group(1)] = m.group(2).split("\\n")
        elif m := EDGE.match(line):
            edges.append((m.group(1), m.group(2)))
    return nodes, edges


def _mlp_loss():
    md.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x = md.randn(5, 4)
    loss = F.cross_entropy(model(x), md.tensor([0, 1, 2, 0, 1]))
    return model, x, loss


def test_one_node_per_op_and_leaf_and_one_edge_per_input():
    model, x, loss = _mlp_loss()
    params = {"x": x, **dict(model.named_parameters())}
    nodes, edges = _parse(viz.draw_graph(loss, params=params))
    titles = sorted(label[0] for label in nodes.values())
    ops = ["NLL", "LogSoftmax", "Linear", "Linear", "ReLU"]
    assert titles == sorted([*ops, "0.weight", "0.bias", "2.weight", "2.bias", "x", "tensor"])
    by_title = {label[0]: label for label in nodes.values()}
    assert by_title["0.weight"][1] == "(8, 4) float32"
    assert by_title["NLL"][1] == "() float32"
    # edges: 3 + 3 (Linear) + 1 (ReLU) + 1 (LogSoftmax) + 2 (NLL) inputs, + the output
    assert len(edges) == 11
    assert all(a in nodes or a.endswith("_out") for pair in edges for a in pair)
    assert sum(b.endswith("_out") for _, b in edges) == 1


def test_saved_arrays_are_named_and_freed_after_backward():
    _, _, loss = _mlp_loss()
    before = viz.draw_graph(loss, show_saved=True)
    assert "saved: input 0" in before and "saved: output" in before  # Linear, ReLU
    loss.backward()
    after = viz.draw_graph(loss, show_saved=True, show_values=True)
    assert "saved: freed by backward" in after and "saved: input 0" not in after
    nodes, _ = _parse(after)
    weight = next(label for label in nodes.values() if label[1] == "(8, 4) float32")
    assert weight[2].startswith("value: min") and weight[3].startswith("grad: min")


def test_shared_tensor_is_one_node_and_several_outputs_are_marked():
    x = md.randn(3, requires_grad=True)
    y = x * x
    nodes, edges = _parse(viz.draw_graph([y, x.exp()], params={"x": x}))
    assert sorted(label[0] for label in nodes.values()) == ["Exp", "Mul", "x"]
    x_id = next(k for k, label in nodes.items() if label[0] == "x")
    assert sum(a == x_id for a, _ in edges) == 3  # twice into Mul, once into Exp
    assert sum(b.endswith("_out") for _, b in edges) == 2


def test_a_graph_ten_thousand_ops_deep_draws_without_recursion():
    x = md.randn(2, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0
    nodes, _ = _parse(viz.draw_graph(y))
    assert len(nodes) == 1 + 2 * 10_000  # the leaf, each Mul and its constant


@pytest.mark.parametrize("suffix, magic", [(".svg", b"<?xml"), (".png", b"\x89PNG")])
def test_render_writes_the_file(tmp_path, suffix, magic):
    if viz.graphviz_dot() is None:
        pytest.skip("Graphviz 'dot' is not installed")
    _, _, loss = _mlp_loss()
    path = viz.render_graph(viz.draw_graph(loss), tmp_path / f"g{suffix}")
    with open(path, "rb") as f:
        head = f.read()
    assert head.startswith(magic) and not list(tmp_path.glob("*.tmp"))
    if suffix == ".svg":
        assert head.count(b'class="node"') == 12 and b"LogSoftmax" in head


def test_render_without_graphviz_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(graph_module.shutil, "which", lambda name: None)
    _, _, loss = _mlp_loss()
    dot = viz.draw_graph(loss)
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        viz.render_graph(dot, tmp_path / "g.png")
    assert viz.render_graph(dot, tmp_path / "g.dot").endswith("g.dot")  # text needs nothing
    with pytest.raises(ValueError, match=r"use \.dot, \.svg, \.png or \.pdf"):
        viz.render_graph(dot, tmp_path / "g.jpeg")


def test_a_create_graph_gradient_draws_the_backward_ops():
    x = md.randn(3, requires_grad=True)
    (g,) = md.autograd.grad(x.tanh().sum(), x, create_graph=True)
    nodes, _ = _parse(viz.draw_graph(g, params={"x": x}))
    titles = sorted(label[0] for label in nodes.values())
    # d/dx sum(tanh x) = dy (1 - tanh(x)^2): Tanh's backward recorded on Tanh's output
    assert {"x", "Tanh", "Mul", "Sub"} <= set(titles)
    assert titles.count("Mul") >= 2


def test_forward_marks_the_ops_of_the_recorded_backward_pass():
    x = md.randn(3, requires_grad=True)
    loss = x.tanh().sum()
    (g,) = md.autograd.grad(loss, x, create_graph=True)
    dot = viz.draw_graph(g, params={"x": x}, forward=loss)
    ops = {
        m.group(2).split("\\n")[0]: ("orange" if "#f8d8b0" in line else "blue")
        for line in dot.splitlines()
        if (m := NODE.match(line)) and ("#f8d8b0" in line or "#dbe8f6" in line)
    }
    assert ops.pop("Tanh") == "blue"  # the forward op the derivative reads
    assert {"Mul", "Sub"} <= set(ops) and set(ops.values()) == {"orange"}
    assert "legend [label=" in dot and "legend" not in viz.draw_graph(g)
