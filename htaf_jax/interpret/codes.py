"""The binary code itself: how far it limits accuracy, and a random code to compare with.

- ``code_collisions``: images with the same code get the same prediction from
  any head, so a code shared by several true labels caps accuracy. For each
  distinct code, the best any head can do is predict its most frequent label:
  ``ceiling`` = Σ_codes (count of its most frequent label) / N.
- ``random_concepts``: a frozen random projection of features h (N, D) to K
  concepts, each switched on for its share ``on_rates[k]`` of the images
  (thresholded at that quantile of the fitting images): the baseline code
  that has the learned concepts' number and on-rates and no training.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class CodeCollisions(NamedTuple):
    distinct_codes: int  # distinct rows of the code
    shared_codes: float  # share of the distinct codes whose images hold > 1 true label
    images_in_shared: float  # share of the images whose code is such a code
    ceiling: float  # the most accurate any function of the code can be on these images


def code_collisions(hard, labels) -> CodeCollisions:
    """Collisions of the binary code ``hard`` (N, K) against true ``labels`` (N,)."""
    z = np.asarray(hard) > 0.5
    labels = np.asarray(labels).astype(np.int64)
    if z.ndim != 2 or len(z) != len(labels) or len(z) == 0:
        raise ValueError(f"need codes (N, K) and labels (N,), got {z.shape} and {labels.shape}")
    packed = np.packbits(z, axis=1)
    _, code = np.unique(packed, axis=0, return_inverse=True)
    code = code.reshape(-1)
    n_codes, n_classes = int(code.max()) + 1, int(labels.max()) + 1
    counts = np.zeros((n_codes, n_classes), np.int64)
    np.add.at(counts, (code, labels), 1)
    shared = (counts > 0).sum(axis=1) > 1
    return CodeCollisions(
        n_codes,
        float(shared.mean()),
        float(shared[code].mean()),
        float(counts.max(axis=1).sum() / len(labels)),
    )


class RandomConcepts(NamedTuple):
    projection: np.ndarray  # (D, K), N(0, 1/D)
    thresholds: np.ndarray  # (K,)

    def __call__(self, features) -> np.ndarray:
        """(N, D) features → (N, K) concepts in {0, 1} (float32)."""
        return (np.asarray(features, np.float32) @ self.projection >= self.thresholds).astype(
            np.float32
        )


def random_concepts(features, on_rates, seed: int = 0) -> RandomConcepts:
    """A frozen random projection of ``features`` (N, D) to K = len(``on_rates``) concepts,
    concept k thresholded at the (1 − on_rates[k]) quantile of its projections on these
    features, so it is on for a share on_rates[k] of them."""
    h = np.asarray(features, np.float32)
    rates = np.clip(np.asarray(on_rates, np.float64), 0.0, 1.0)
    rng = np.random.default_rng(seed)
    projection = (rng.standard_normal((h.shape[1], len(rates))) / np.sqrt(h.shape[1])).astype(
        np.float32
    )
    p = h @ projection
    thresholds = np.array(
        [
            np.inf if r == 0 else np.quantile(p[:, k], 1.0 - r, method="higher")
            for k, r in enumerate(rates)
        ],
        np.float32,
    )
    return RandomConcepts(projection, thresholds)
