"""A sparse head on frozen concepts: accuracy at a controlled number of effective concepts.

VLG-CBM (Srivastava et al., NeurIPS 2024) compares concept bottlenecks at a fixed
*number of effective concepts* (NEC): the average number of non-zero head
weights per class. ``nec_mask`` keeps, for each class c, the NEC weights of
largest |V[k, c]|; ``fit_sparse_head`` refits the kept weights (and the bias)
on frozen concepts (hard concepts z (N, K), or any fixed features) by
full-batch Adam on the mean cross-entropy, starting from the masked head.
Which weights to keep is read off the trained head, or off the head after an L1 path
on the frozen concepts (``l1_heads``: proximal gradient on the cross-entropy plus
λ·Σ|V|, as VLG-CBM's GLM-SAGA solves its sparse layer), which ranks the concepts by
what they add beside the others rather than by the dense head's weights.
The features are precomputed once, so a refit costs a few hundred small
matmuls. ``choose_sparse_heads`` picks the L1 path's λ and the refit's learning rate
and steps on a validation split and refits on the whole training split with them.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

# (learning rate, Adam steps) the validation split chooses from; (0, 0): the masked
# head as it is, no refit.
REFIT_GRID = ((0.0, 0), (0.03, 100), (0.1, 100))
# λ of the L1 path whose head ranks the weights the NEC mask keeps (0: the trained head).
MASK_LAMBDAS = (0.0, 3e-3, 1e-2, 3e-2, 0.1)
L1_STEPS = 300  # proximal-gradient steps of each λ, from the trained head


def nec_mask(kernel, nec: int | None) -> np.ndarray:
    """(K, C) boolean mask: per class (column), the ``nec`` entries of largest |V[k, c]|
    (ties by concept index); ``nec=None`` or ``nec ≥ K``: every entry."""
    kernel = np.abs(np.asarray(kernel))
    if nec is None or nec >= kernel.shape[0]:
        return np.ones(kernel.shape, bool)
    if nec < 1:
        raise ValueError(f"NEC must be ≥ 1 (or None: all), got {nec!r}")
    order = np.argsort(-kernel, axis=0, kind="stable")[:nec]  # (nec, C)
    mask = np.zeros(kernel.shape, bool)
    mask[order, np.arange(kernel.shape[1])[None, :]] = True
    return mask


class SparseHead(NamedTuple):
    """A linear head logits = z (V ⊙ mask) + b, V ≥ 0 where ``nonneg``."""

    kernel: np.ndarray  # (K, C), zero outside the mask
    bias: np.ndarray  # (C,)
    mask: np.ndarray  # (K, C) bool

    def logits(self, z) -> np.ndarray:
        return np.asarray(z, np.float32) @ self.kernel + self.bias


def head_accuracy(head: SparseHead, z, labels) -> float:
    """Accuracy of ``head`` on features ``z`` (N, K) with ``labels`` (N,)."""
    return float(np.mean(head.logits(z).argmax(-1) == np.asarray(labels)))


def fit_sparse_head(
    z,
    labels,
    kernel,
    bias,
    mask,
    learning_rate: float = 0.03,
    steps: int = 100,
    nonneg: bool = False,
) -> SparseHead:
    """Refits the head's weights inside ``mask`` (K, C) and its bias on (z, labels).

    Starts from ``kernel ⊙ mask`` and ``bias``; full-batch Adam on the mean
    softmax cross-entropy for ``steps`` steps (0: no refit). ``nonneg``: the
    effective weights are max(w, 0) (a concept only votes for a class), as the
    ICBM's ``nonneg_head``. Weights outside the mask stay exactly 0.
    """
    mask = np.asarray(mask, bool)
    kernel = np.where(mask, np.asarray(kernel, np.float32), 0.0).astype(np.float32)
    bias = np.asarray(bias, np.float32)
    if steps > 0:
        # Only the concepts some class keeps enter the fit (≤ NEC·C of K): the others'
        # weights are 0 and get no gradient, so the refit is the same, and cheaper. Their
        # count is padded with zero columns to a power of two: few shapes to compile.
        used = np.flatnonzero(mask.any(axis=1))
        width = min(len(mask), 1 << max(len(used) - 1, 0).bit_length())
        z_used = np.zeros((len(z), width), np.float32)
        z_used[:, : len(used)] = np.asarray(z, np.float32)[:, used]
        pad = np.zeros((width - len(used), mask.shape[1]), bool)
        fitted, bias = map(
            np.asarray,
            _adam(
                jnp.asarray(z_used),
                jnp.asarray(labels, jnp.int32),
                jnp.asarray(np.concatenate([kernel[used], pad.astype(np.float32)])),
                jnp.asarray(bias),
                jnp.asarray(np.concatenate([mask[used], pad])),
                jnp.float32(learning_rate),
                steps=int(steps),
                nonneg=bool(nonneg),
            ),
        )
        kernel[used] = fitted[: len(used)]
    if nonneg:
        kernel = np.maximum(kernel, 0.0)
    return SparseHead(np.where(mask, kernel, 0.0).astype(np.float32), bias, mask)


@functools.partial(jax.jit, static_argnames=("steps", "nonneg"))
def _adam(z, labels, kernel, bias, mask, learning_rate, steps: int, nonneg: bool):
    # One compiled program per shape and step count (the rate is traced), so a grid of
    # rates and many NECs reuse it.
    m = mask.astype(jnp.float32)
    tx = optax.scale_by_adam()

    def loss(params):
        w, b = params
        w = jax.nn.relu(w) if nonneg else w
        return optax.softmax_cross_entropy_with_integer_labels(z @ (w * m) + b, labels).mean()

    def body(carry, _):
        params, state = carry
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        params = jax.tree.map(lambda p, u: p - learning_rate * u, params, updates)
        return (params, state), None

    params = (kernel, bias)
    (params, _), _ = jax.lax.scan(body, (params, tx.init(params)), None, length=steps)
    return params


def l1_heads(
    z, labels, kernel, bias, lambdas=MASK_LAMBDAS, nonneg: bool = False, steps: int = L1_STEPS
) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """``{λ: (kernel, bias)}``: the head after ``steps`` proximal-gradient steps (ISTA) on
    mean cross-entropy + λ·Σ|V| from (``kernel``, ``bias``); λ = 0: the head as given.

    The step is 1/L, L = ½·λ_max([z, 1]ᵀ[z, 1]) / N, a bound on the cross-entropy's
    curvature (the softmax's Jacobian has norm ≤ ½), so the path descends for any
    features. The proximal step soft-thresholds V, and clips it at 0 where ``nonneg``.
    """
    start = (np.asarray(kernel, np.float32), np.asarray(bias, np.float32))
    if not any(lambdas):  # the head as given: no path, no curvature bound to compute
        return {lam: start for lam in lambdas}
    z = np.asarray(z, np.float32)
    z1 = np.concatenate([z, np.ones((len(z), 1), np.float32)], axis=1)
    rate = 1.0 / (0.5 * float(np.linalg.eigvalsh(z1.T @ z1 / len(z))[-1]))
    args = (jnp.asarray(z), jnp.asarray(labels, jnp.int32), *start, jnp.float32(rate))
    path = functools.partial(_ista, *args, steps=int(steps), nonneg=bool(nonneg))
    return {lam: jax.device_get(path(jnp.float32(lam))) if lam else start for lam in lambdas}


@functools.partial(jax.jit, static_argnames=("steps", "nonneg"))
def _ista(z, labels, kernel, bias, rate, lam, steps: int, nonneg: bool):
    def loss(params):
        w, b = params
        return optax.softmax_cross_entropy_with_integer_labels(z @ w + b, labels).mean()

    def body(params, _):
        gw, gb = jax.grad(loss)(params)
        w = params[0] - rate * gw
        w = jnp.sign(w) * jnp.maximum(jnp.abs(w) - rate * lam, 0.0)  # soft threshold
        return (jax.nn.relu(w) if nonneg else w, params[1] - rate * gb), None

    (w, b), _ = jax.lax.scan(body, (kernel, bias), None, length=steps)
    return w, b


class RefitChoice(NamedTuple):
    head: SparseHead  # refitted on the whole training split
    learning_rate: float  # the chosen setting
    steps: int
    validation_accuracy: float  # of the chosen setting, fitted without the validation split
    l1: float = 0.0  # the L1 path's λ whose head chose the mask (0: the trained head)


def choose_sparse_heads(
    z_train,
    y_train,
    z_val,
    y_val,
    kernel,
    bias,
    necs: Sequence[int | None],
    nonneg: bool = False,
    grid: Sequence[tuple[float, int]] = REFIT_GRID,
    lambdas: Sequence[float] = MASK_LAMBDAS,
) -> dict:
    """``{nec: RefitChoice}``. For each NEC, the (λ, refit setting) of ``lambdas`` × ``grid``
    whose head, fitted on (z_train, y_train), is most accurate on (z_val, y_val) (ties: the
    earlier pair): the NEC mask of the λ-path head (``l1_heads`` on the training images),
    refitted from it; then that mask and start refitted on the training and validation
    images together. λ = 0 is the trained head's own mask."""
    z_all = np.concatenate([np.asarray(z_train), np.asarray(z_val)])
    y_all = np.concatenate([np.asarray(y_train), np.asarray(y_val)])
    paths = l1_heads(z_train, y_train, kernel, bias, lambdas, nonneg)  # one path, every NEC
    pairs = [(lam, lr, steps) for lam in lambdas for lr, steps in grid]
    out = {}
    for nec in necs:
        masks = {lam: nec_mask(paths[lam][0], nec) for lam in lambdas}
        scores = [
            head_accuracy(
                fit_sparse_head(z_train, y_train, *paths[lam], masks[lam], lr, steps, nonneg),
                z_val,
                y_val,
            )
            for lam, lr, steps in pairs
        ]
        best = int(np.argmax(scores))
        lam, lr, steps = pairs[best]
        head = fit_sparse_head(z_all, y_all, *paths[lam], masks[lam], lr, steps, nonneg)
        out[nec] = RefitChoice(head, float(lr), int(steps), scores[best], float(lam))
    return out


def choose_sparse_head(
    z_train, y_train, z_val, y_val, kernel, bias, nec: int | None, nonneg: bool = False, **grids
) -> RefitChoice:
    """``choose_sparse_heads`` for one NEC."""
    return choose_sparse_heads(
        z_train, y_train, z_val, y_val, kernel, bias, (nec,), nonneg, **grids
    )[nec]
