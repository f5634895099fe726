"""Per-layer reuse schedule: which channel is computed from which.

A schedule is a spanning forest over a binary layer's output channels. A root
channel is a full XNOR-popcount over all N inputs; a child channel j with
parent i is reconstructed from i's integer sum::

    y_j = s * y_i + 2 * sum_{k in P_j} x_k * w_j[k]

with s = +1 and P_j = {k : w_i[k] != w_j[k]} for a plain edge, or s = -1 and
P_j = {k : w_i[k] == w_j[k]} for a negation edge (w_j close to -w_i). The
cost of a child is |P_j| XNORs, of a root N.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Schedule"]


@dataclass(frozen=True, eq=False)
class Schedule:
    """Computation order and reuse edges of one binary layer.

    Attributes
    ----------
    order : ndarray of int64, shape (C,)
        Channels in computation order: by tree level, then channel index.
        Every parent comes before its children.
    parent : ndarray of int64, shape (C,)
        Parent channel of each channel (indexed by channel), -1 for a root.
    negate : ndarray of bool, shape (C,)
        True where the channel reuses the negated parent sum (s = -1).
    level : ndarray of int64, shape (C,)
        Depth in the forest, 0 for roots.
    positions : tuple of ndarray of int64
        Per channel (indexed by channel), the sorted input positions of its
        correction set P_j; empty for roots.
    """

    order: np.ndarray
    parent: np.ndarray
    negate: np.ndarray
    level: np.ndarray
    positions: tuple

    @property
    def n_channels(self) -> int:
        return int(self.parent.shape[0])

    @property
    def roots(self) -> np.ndarray:
        return np.flatnonzero(self.parent < 0)

    @property
    def height(self) -> int:
        """Longest root-to-leaf path, in edges (0 when every channel is a root)."""
        return int(self.level.max()) if self.level.size else 0

    @property
    def weight(self) -> int:
        """Total edge weight: sum of the children's correction-set sizes."""
        return int(sum(len(p) for p, par in zip(self.positions, self.parent) if par >= 0))

    def xnors(self, n_inputs: int) -> int:
        """XNOR count of one evaluation: N per root plus |P_j| per child."""
        return int(len(self.roots)) * n_inputs + self.weight

    @classmethod
    def from_parents(cls, weights: np.ndarray, parent: np.ndarray, negate: np.ndarray | None = None) -> "Schedule":
        """Build a schedule from a parent array over binary weights (C, N).

        Levels, order and correction sets are derived; the parent array must
        describe a forest (no cycles).
        """
        weights = np.asarray(weights, dtype=bool)
        parent = np.asarray(parent, dtype=np.int64).copy()
        c = weights.shape[0]
        if negate is None:
            negate = np.zeros(c, dtype=bool)
        negate = np.asarray(negate, dtype=bool).copy()
        negate[parent < 0] = False
        level = np.full(c, -1, dtype=np.int64)
        for j in range(c):
            path = []
            k = j
            while level[k] < 0:
                path.append(k)
                if len(path) > c:
                    raise ValueError("parent array contains a cycle")
                if parent[k] < 0:
                    level[k] = 0
                    path.pop()
                    break
                k = parent[k]
            for m in reversed(path):
                level[m] = level[parent[m]] + 1
        order = np.lexsort((np.arange(c), level)).astype(np.int64)
        positions = []
        for j in range(c):
            p = parent[j]
            if p < 0:
                positions.append(np.zeros(0, dtype=np.int64))
            elif negate[j]:
                positions.append(np.flatnonzero(weights[j] == weights[p]).astype(np.int64))
            else:
                positions.append(np.flatnonzero(weights[j] != weights[p]).astype(np.int64))
        return cls(order=order, parent=parent, negate=negate, level=level, positions=tuple(positions))

    @classmethod
    def plain(cls, n_channels: int) -> "Schedule":
        """Every channel a root: the no-reuse baseline."""
        return cls.from_parents(np.zeros((n_channels, 0), dtype=bool), np.full(n_channels, -1))
