"""Model gradients checked by value (issue 36): a model's gradient against the same model
differentiated by autodiff alone, and a smooth model's against finite differences.

``autodiff_reference(monkeypatch)`` replaces the library's three custom VJPs with plain
computations that autodiff differentiates, with the same forward values:

- HTAF's stable rule by the composite σ(α·tanh(βx)) itself;
- the straight-through primitive by sg(f(x)) + sg(rule(x))·(x − sg(x));
- the LIF scan's hand-written backward by tests/reference_lif.py's scan, its spike
  function the straight-through expression above.

Under it, ``jax.grad`` of a model's loss is the reference; outside it, the library's.
"""

import jax
import jax.numpy as jnp
import numpy as np
from reference_lif import reference_lif

from htaf_jax import functions as F
from htaf_jax.spiking import lif as lif_module

sg = jax.lax.stop_gradient


def _straight_through(forward, grad, x, hparams):
    hp = jax.tree.map(sg, hparams)
    return sg(forward(x, **hp)) + sg(grad(x, **hp).astype(x.dtype)) * (x - sg(x))


def _htaf(x, alpha, beta):
    return jax.nn.sigmoid(alpha * jnp.tanh(beta * x)).astype(x.dtype)


def _lif(currents, beta, threshold, hp, spike, options, learn_beta, learn_theta, steps):
    def spike_fn(x):
        return sg(spike.value(x, hp)) + sg(spike.rule(x, hp)) * (x - sg(x))

    return reference_lif(
        currents,
        beta=beta,
        threshold=threshold,
        spike_fn=spike_fn,
        reset=options.reset,
        detach_reset=options.detach_reset,
        reset_delay=options.reset_delay,
        fire_first=options.fire_first,
        num_steps=steps,
    )


def autodiff_reference(monkeypatch):
    monkeypatch.setattr(F, "_straight_through", _straight_through)
    monkeypatch.setattr(F, "_htaf_jit", _htaf)
    monkeypatch.setattr(lif_module, "_lif", _lif)


def assert_grads_equal(got, want, rtol=1e-4):
    """Leaf by leaf, up to float32 rounding relative to the leaf's largest entry, and not
    all zero (the gradient reaches every parameter)."""
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want)):
        scale = float(jnp.abs(b).max())
        assert scale > 0, f"no gradient reaches {jax.tree_util.keystr(path)}"
        np.testing.assert_allclose(
            a, b, rtol=rtol, atol=rtol * scale, err_msg=jax.tree_util.keystr(path)
        )


def random_direction(tree, seed=0):
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape), p.dtype), tree)


def directional_difference(loss, params, direction, eps=1e-3):
    """(f(p + εv) − f(p − εv)) / 2ε: the derivative of a smooth loss along v."""

    def at(sign):
        return loss(jax.tree.map(lambda p, v: p + sign * eps * v, params, direction))

    return (at(1.0) - at(-1.0)) / (2 * eps)


def tree_vdot(a, b):
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def check_against_float64(loss_of, params, grads, eps=1e-6):
    """A smooth model's float32 gradient ``grads`` against float64 autodiff (leaf by leaf,
    none zero), and float64 autodiff against central differences along a random direction.
    ``loss_of(dtype)``: the loss as a function of the parameters, inputs cast to dtype."""
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        loss = loss_of(jnp.float64)
        v = random_direction(p64)

        def run(p):
            g = jax.grad(loss)(p)
            return g, tree_vdot(g, v), directional_difference(loss, p, v, eps)

        g64, slope, difference = jax.jit(run)(p64)
        np.testing.assert_allclose(slope, difference, rtol=1e-5)
        g64 = jax.tree.map(np.asarray, g64)  # float64 stays float64 outside x64 mode
    # Relative to the largest entry of all: some leaves' true gradient is 0 (attention's
    # key bias: softmax ignores a shift), where float32 leaves rounding noise.
    scale = max(float(np.abs(leaf).max()) for leaf in jax.tree.leaves(g64))
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(grads), jax.tree.leaves(g64)):
        np.testing.assert_allclose(
            a, b, rtol=1e-3, atol=1e-4 * scale, err_msg=jax.tree_util.keystr(path)
        )
    for part in g64:  # the gradient reaches every part of the model
        assert max(float(np.abs(leaf).max()) for leaf in jax.tree.leaves(g64[part])) > 0, part
