"""A registry surrogate is Spyx 1.0's ``activation`` as it is, unwrapped."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import htaf_jax as H

spyx = pytest.importorskip("spyx")
import spyx.nn as snn  # noqa: E402


def _net(activation, rngs):
    return snn.Sequential(
        nnx.Linear(12, 24, rngs=rngs),
        snn.LIF((24,), beta=0.8, activation=activation, rngs=rngs),
        nnx.Linear(24, 3, rngs=rngs),
        snn.LI((3,), beta=0.9, rngs=rngs),
    )


def test_spyx_lif_uses_our_surrogate_forward_and_backward():
    """One Spyx LIF step with HTAF: spikes are H(V − θ) (H(0) = 1) and the gradient
    with respect to the membrane is exactly htaf'(V − θ)."""
    unit = H.get_unit("htaf", alpha=4.0, beta=1.0)
    lif = snn.LIF((5,), beta=0.5, threshold=1.0, activation=unit, rngs=nnx.Rngs(0))
    v = jnp.array([[0.0, 0.5, 1.0, 1.5, 3.0]])
    spikes, _ = lif(jnp.zeros_like(v), v)
    np.testing.assert_array_equal(spikes, [[0, 0, 1, 1, 1]])
    g = jax.grad(lambda vv: jnp.sum(lif(jnp.zeros_like(vv), vv)[0]))(v)
    np.testing.assert_allclose(g, unit.grad(v - 1.0), rtol=1e-6)


@pytest.mark.slow  # trains a Spyx network (make test-slow); the unit checks above stay fast
def test_spyx_network_trains_with_htaf():
    model = _net(H.get_unit("htaf"), nnx.Rngs(0))
    opt = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)
    x = (jax.random.uniform(jax.random.key(1), (20, 32, 12)) < 0.3).astype(jnp.float32)
    y = jnp.argmax(x.sum(0)[:, :3], -1)

    @nnx.jit
    def step(model, opt):
        def loss_fn(m):
            out, _ = snn.run(m, x)
            return optax.softmax_cross_entropy_with_integer_labels(out.mean(0), y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return loss

    losses = [float(step(model, opt)) for _ in range(40)]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.7 * losses[0], (losses[0], losses[-1])
