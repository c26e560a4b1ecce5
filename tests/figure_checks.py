"""What every figure must pass: no two pieces of text overlap, and every axis with numbers
on its ticks has a label (tick labels that are names, such as classes or the rows of an
image strip, name themselves). ``layout_problems(fig)`` lists what is wrong, in words;
tests assert it is empty.

Text boxes are matplotlib's own extents after drawing (``get_window_extent``), so the check
sees what the PNG shows: titles against tick labels of the row above, a y label against
the panel to its left, rotated tick labels against each other, a legend against a title.
"""

from __future__ import annotations

import re
from typing import Any

TOLERANCE = 1.0  # pixels: boxes that only touch do not count as overlapping


def _texts(fig: Any) -> list[tuple[str, Any, Any]]:
    """(description, artist, the axes it belongs to or None) of every visible, non-empty
    text of the figure."""
    found = []
    for text in fig.texts:
        found.append(("figure text", text, None))
    if getattr(fig, "_suptitle", None) is not None:
        found.append(("suptitle", fig._suptitle, None))
    for k, ax in enumerate(fig.axes):
        where = f"axes {k} ({ax.get_title() or ax.get_ylabel() or 'untitled'})"
        for name in ("title", "_left_title", "_right_title"):
            found.append((f"{where} title", getattr(ax, name), ax))
        found.append((f"{where} x label", ax.xaxis.label, ax))
        found.append((f"{where} y label", ax.yaxis.label, ax))
        for axis, letter in ((ax.xaxis, "x"), (ax.yaxis, "y")) if ax.axison else ():
            for tick in _drawn_ticks(axis):
                if tick.label1.get_visible() and tick.get_visible():
                    found.append((f"{where} {letter} tick", tick.label1, ax))
                if tick.label2.get_visible() and tick.get_visible():
                    found.append((f"{where} {letter} tick", tick.label2, ax))
        for text in ax.texts:
            found.append((f"{where} text", text, ax))
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            found.append((f"{where} legend", legend, ax))
    for legend in fig.legends:
        found.append(("figure legend", legend, None))
    unique = {id(entry[1]): entry for entry in reversed(found)}  # the suptitle once
    return [
        (name, artist, owner)
        for name, artist, owner in reversed(unique.values())
        if artist.get_visible() and (not hasattr(artist, "get_text") or artist.get_text().strip())
    ]


def _drawn_ticks(axis: Any) -> list[Any]:
    """The major ticks inside the axis's view limits: matplotlib keeps (undrawn) ticks
    beyond them too."""
    low, high = sorted(axis.get_view_interval())
    margin = 1e-9 * max(abs(low), abs(high), 1.0)
    return [t for t in axis.get_major_ticks() if low - margin <= t.get_loc() <= high + margin]


def _overlap(a: Any, b: Any) -> bool:
    return (
        min(a.x1, b.x1) - max(a.x0, b.x0) > TOLERANCE
        and min(a.y1, b.y1) - max(a.y0, b.y0) > TOLERANCE
    )


def _inside(a: Any, b: Any) -> bool:
    return (
        a.x0 >= b.x0 - TOLERANCE
        and a.x1 <= b.x1 + TOLERANCE
        and (a.y0 >= b.y0 - TOLERANCE and a.y1 <= b.y1 + TOLERANCE)
    )


def layout_problems(fig: Any) -> list[str]:
    """Overlapping text boxes, text over another panel, and unlabelled axes of a figure."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(n, t, owner, t.get_window_extent(renderer)) for n, t, owner in _texts(fig)]
    problems = []
    for i, (name_a, artist_a, _, a) in enumerate(boxes):
        for name_b, artist_b, _, b in boxes[i + 1 :]:
            if _overlap(a, b):
                problems.append(f"{name_a} {_label(artist_a)} overlaps {name_b} {_label(artist_b)}")
    panels = [(k, ax, ax.get_window_extent(renderer)) for k, ax in enumerate(fig.axes)]
    for name, artist, owner, box in boxes:
        for k, ax, panel in panels:
            if ax is not owner and ax.get_visible() and _overlap(box, panel):
                problems.append(f"{name} {_label(artist)} runs over the panel of axes {k}")
    for k, ax in enumerate(fig.axes):
        problems.extend(_missing_labels(k, ax))
    return problems


def _label(artist: Any) -> str:
    return repr(artist.get_text()) if hasattr(artist, "get_text") else ""


def _numeric(text: str) -> bool:
    """A tick label that is a number ('0.5', '−3', '1e-3', '$\\mathdefault{10^{2}}$'), not a
    name ('cat', 'k = 16')."""
    for old, new in (("\\mathdefault", ""), ("$", ""), ("{", ""), ("}", ""), ("\u2212", "-")):
        text = text.replace(old, new)
    return re.fullmatch(r"[-+]?[\d.,]+(e[-+]?\d+)?(\^[-+]?[\d.]+)?%?", text.strip()) is not None


def _missing_labels(k: int, ax: Any) -> list[str]:
    if not ax.get_visible() or not ax.axison:
        return []  # an image panel with its axes switched off
    colorbar = getattr(ax, "_colorbar", None)
    if colorbar is not None:
        long_axis = ax.yaxis if colorbar.orientation == "vertical" else ax.xaxis
        return [] if long_axis.label.get_text().strip() else [f"colorbar {k} has no label"]
    missing = []
    for axis, letter in ((ax.xaxis, "x"), (ax.yaxis, "y")):
        has_ticks = any(
            (t.label1.get_visible() and _numeric(t.label1.get_text()))
            or (t.label2.get_visible() and _numeric(t.label2.get_text()))
            for t in _drawn_ticks(axis)
        )
        if has_ticks and not axis.label.get_text().strip():
            missing.append(f"axes {k} ({ax.get_title() or 'untitled'}) has no {letter} label")
    return missing
