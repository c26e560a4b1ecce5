"""Hypothesis strategies for op tests: shapes, broadcastable pairs, axes, and seeds from
which NumPy draws the values (values from NumPy keep the examples fast; the shapes and the
seed are what hypothesis explores and shrinks)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

seeds = st.integers(0, 2**32 - 1)


def shapes(min_dims: int = 1, max_dims: int = 3, min_side: int = 1, max_side: int = 4):
    """Array shapes; sizes of 1 included (broadcasting edge cases), no empty dims."""
    return st.lists(st.integers(min_side, max_side), min_size=min_dims, max_size=max_dims).map(
        tuple
    )


@st.composite
def broadcastable_pair(draw, max_dims: int = 3):
    """Two shapes that broadcast together: b is a suffix of a with some sides set to 1
    (and the roles swapped at random)."""
    a = draw(shapes(1, max_dims))
    cut = draw(st.integers(0, len(a) - 1))
    b = tuple(1 if draw(st.booleans()) else d for d in a[cut:])
    return (a, b) if draw(st.booleans()) else (b, a)


@st.composite
def shape_and_axis(draw, min_dims: int = 1, max_dims: int = 3):
    """A shape with a valid axis argument: None, an int (maybe negative) or a tuple."""
    shape = draw(shapes(min_dims, max_dims))
    nd = len(shape)
    axis = draw(
        st.one_of(
            st.none(),
            st.integers(-nd, nd - 1),
            st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True).map(tuple),
        )
    )
    return shape, axis


def normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape)


def away_from_zero(rng: np.random.Generator, shape: tuple[int, ...], low: float = 0.2):
    """Magnitudes in [low, 2) with random signs: clear of kinks at 0."""
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(low, 2.0, shape)


def positive(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(0.5, 2.0, shape)


def distinct(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values at least 4/n apart, shuffled: no ties for max/min."""
    n = int(np.prod(shape))
    return rng.permutation(np.linspace(-2, 2, n) + 0.01).reshape(shape)
