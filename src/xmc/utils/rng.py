"""A tiny counter-seeded random stream for numba kernels.

Each task (a solver group, a k-means split) derives its own stream from ``(seed, key)``, so
results never depend on which thread ran the task or in which order.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, inline="always")
def seed_state(seed, key):
    state = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(key + 1) * np.uint64(0xBF58476D1CE4E5B9)
    return state if state != 0 else np.uint64(1)


@nb.njit(cache=True, inline="always")
def next_random(state):
    """xorshift64*: small, fast and good enough to shuffle coordinates. Returns (state, 31 bits)."""
    state ^= state >> np.uint64(12)
    state ^= state << np.uint64(25)
    state ^= state >> np.uint64(27)
    return state, (state * np.uint64(2685821657736338717)) >> np.uint64(33)


@nb.njit(cache=True)
def shuffle(index, n, state):
    """Fisher-Yates shuffle of ``index[:n]`` in place; returns the advanced state."""
    for s in range(n - 1, 0, -1):
        state, r = next_random(state)
        t = np.int64(r % np.uint64(s + 1))
        index[s], index[t] = index[t], index[s]
    return state


def random_subset(n: int, size: int, seed: int) -> np.ndarray:
    """``min(n, size)`` sorted row ids drawn without replacement from ``range(n)``: a held-out check
    on a random subset, not on the first rows (splits are often sorted, by date or by id)."""
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))
