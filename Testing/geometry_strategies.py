"""Hypothesis strategies for volume geometry: oblique directions, LPS/RAS storage, any spacing."""

import numpy as np
from hypothesis import strategies as st


@st.composite
def directions(draw):
    """Orthonormal 3x3 with columns as axes: a random rotation, each axis possibly reversed."""
    q = np.array(draw(st.lists(st.floats(-1, 1), min_size=4, max_size=4)))
    if np.linalg.norm(q) < 0.1:
        q = np.array([1.0, 0, 0, 0])
    w, x, y, z = q / np.linalg.norm(q)
    rot = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])
    flips = np.array(draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=3, max_size=3)))
    return rot * flips[None, :]


spacings = st.lists(st.floats(0.3, 4.0), min_size=3, max_size=3).map(np.array)
origins = st.lists(st.floats(-400, 400), min_size=3, max_size=3).map(np.array)
shapes_kji = st.tuples(st.integers(2, 7), st.integers(3, 9), st.integers(3, 9))
