"""LIF and IF over time: one scan with a hand-written gradient, for every option.

The forward scan writes one (T, B, ...) residual (V[t] with the same-step
reset, else U[t]) over the currents it reads, one step behind the read, and
carries one step's membrane; the spikes and membranes are elementwise
functions of the residual, computed after the scan where XLA fuses them into
their consumer. The backward is a reverse scan over the residual that carries
one step's cotangents. Both cost time linear in T: the write needs nothing the
step computes from the buffer, so XLA updates it in place (written at step t
from the same step's read, it was copied whole at every step: quadratic).
A time-constant current (direct input) is read at every step, not broadcast
over T, and the backward sums its cotangent in its carry (XLA:CPU's sum over
a short leading axis of a (T, B, n) array was most of an SNN step's time).
The equations are in :mod:`htaf_jax.spiking`.

The spike function is a registry unit (its ``grad`` is the backward rule and
its hyperparameters, possibly traced, enter as arguments) or any elementwise
callable x → spikes with its own gradient, whose derivative the backward
takes by ``jax.vjp``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from htaf_jax.functions import _cotangent_like, _step, _wide
from htaf_jax.units import StepUnit

Reset = Literal["subtract", "zero"]
SpikeFn = Callable[[Array], Array]


class NeuronOptions(NamedTuple):
    """The reset and firing options every neuron shares (see :mod:`htaf_jax.spiking`)."""

    reset: Reset = "subtract"
    detach_reset: bool = True
    reset_delay: bool = False
    spike_at_threshold: bool = True
    fire_first: bool = False


def check_options(reset: str, reset_delay: bool, fire_first: bool) -> None:
    """The reset name, and ``fire_first`` only with ``reset_delay``."""
    if reset not in ("subtract", "zero"):
        raise ValueError(f"reset must be 'subtract' or 'zero', got {reset!r}")
    if fire_first and not reset_delay:
        raise ValueError(
            "fire_first=True emits the delayed reset's spikes one step earlier, so it needs "
            "reset_delay=True (Spyx's LIF: reset_delay=True, fire_first=True, "
            "detach_reset=False, spike_at_threshold=False)"
        )


def threshold_spike(spike_fn: SpikeFn, x: Array, spike_at_threshold: bool = True) -> Array:
    """S = H(x) from ``spike_fn``; ``spike_at_threshold=False`` forces H(0) = 0.

    The correction is a constant for the gradient, so dS/dx is ``spike_fn``'s
    surrogate gradient everywhere, at x = 0 too.
    """
    s = spike_fn(x)
    if spike_at_threshold:
        return s
    return s - jax.lax.stop_gradient(jnp.where(x == 0, s, jnp.zeros_like(s)))


class _Spike(NamedTuple):
    """The spike function split for the hand-written gradient: its forward value
    and its derivative, each given the unit's hyperparameters."""

    value: Callable[[Array, dict], Array]
    rule: Callable[[Array, dict], Array]


def _spike_parts(spike_fn: Any, spike_at_threshold: bool) -> tuple[_Spike, dict]:
    """(value, rule), hyperparameters. A step unit's forward is the step (one
    comparison, NaN propagated) and its ``grad`` the rule, rebound to the
    hyperparameters passed in (they may be traced); any other callable (another
    unit, a user's function) gives both through itself."""
    spec = spike_fn.spec if isinstance(spike_fn, StepUnit) else None
    if spec is not None and spec.grad is not None:
        rule = lambda x, hp: _wide(spec.grad, x, hp)  # pyright: ignore[reportArgumentType]
        return _Spike(lambda x, hp: _step(x, spike_at_threshold), rule), dict(spike_fn.hparams)
    fn = getattr(spike_fn, "fn", spike_fn)  # a wrapped user callable

    def value(x, hp):
        s = fn(x)
        return s if spike_at_threshold else jnp.where(x == 0, jnp.zeros_like(s), s)

    def rule(x, hp):
        return jax.vjp(fn, x)[1](jnp.ones_like(x))[0]

    return _Spike(value, rule), {}


def _after_reset(v, s, threshold, subtract: bool):
    """The membrane V once the same step's spike s resets it: V − sθ or V(1 − s)."""
    return v - s * threshold if subtract else v * (1.0 - s)


def _fwd(currents, beta, threshold, hp, spike, options, learn_beta, learn_theta, steps):
    subtract = options.reset == "subtract"
    delayed = options.reset_delay  # with fire_first, the reset spike comes from U[t−1] too
    dtype, const = currents.dtype, steps is not None  # const: one current, read every step

    def fire(x):
        return spike.value(x, hp)

    def step(carry, t):
        # U[t−1]; the residual of step t − 1, written at t (from the carry: the write
        # then reads nothing that the step computes from buf, so XLA updates buf in
        # place); the currents, overwritten by the residual up to t − 2.
        mem, last, buf = carry
        buf = jax.lax.dynamic_update_index_in_dim(buf, last, jnp.maximum(t - 1, 0), 0)
        cur = currents if const else jax.lax.dynamic_index_in_dim(buf, t, keepdims=False)
        if delayed:  # the reset spike from U[t−1]: fire_first's S[t], the delayed S[t−1]
            r = fire(mem - threshold)
            if not options.fire_first:
                r = jnp.where(t == 0, jnp.zeros_like(r), r)  # S[−1] = 0
            mem = beta * mem + cur - r * threshold if subtract else beta * (1.0 - r) * mem + cur
            keep = mem
        else:
            keep = beta * mem + cur
            r = fire(keep - threshold)
            mem = _after_reset(keep, r, threshold, subtract)
        return (mem, keep.astype(dtype), buf), None

    zeros = jnp.zeros_like(currents if const else currents[0])
    buf = jnp.broadcast_to(zeros, (steps,) + zeros.shape) if const else currents
    init = (zeros, zeros if const else currents[0], buf)  # t = 0 writes buf[0] back
    (_, last, resid), _ = jax.lax.scan(step, init, jnp.arange(buf.shape[0]))
    resid = jax.lax.dynamic_update_index_in_dim(resid, last, buf.shape[0] - 1, 0)
    if options.fire_first:  # S[t] = H(U[t−1] − θ), U[−1] = 0
        spikes = fire(jnp.concatenate([zeros[None], resid[:-1]]) - threshold)
        mems = resid
    elif delayed:  # S[t] = H(U[t] − θ); the residual is U
        spikes, mems = fire(resid - threshold), resid
    else:  # S[t] = H(V[t] − θ); U[t] = V[t] after the reset
        spikes = fire(resid - threshold)
        mems = _after_reset(resid, spikes, threshold, subtract)
    return (spikes.astype(dtype), mems.astype(dtype)), (resid, beta, threshold, hp)


def _bwd(spike, options, learn_beta, learn_theta, steps, res, cts):
    resid, beta, threshold, hp = res
    g_spikes, g_mems = cts
    subtract = options.reset == "subtract"
    detach, dtype, const = options.detach_reset, resid.dtype, steps is not None

    def fire(x):
        return spike.value(x, hp)

    def h(x):
        return spike.rule(x, hp)

    def membrane_before(t):
        """U[t−1] (0 at t = 0) from the residual of step t − 1, read (not carried)."""
        prev = jax.lax.dynamic_index_in_dim(resid, jnp.maximum(t - 1, 0), keepdims=False)
        if not options.reset_delay:  # the residual is V: apply its reset
            s = fire(prev - threshold)
            prev = _after_reset(prev, s, threshold, subtract)
        return jnp.where(t > 0, prev, jnp.zeros_like(prev))

    def step(carry, xs):
        g_mem, g_prev, g_beta, g_theta, g_sum = carry  # dL/dU[t], dL/dS[t] from t + 1
        t, here, g_s, g_u = xs
        m = membrane_before(t)
        g_u = g_u + g_mem
        if options.fire_first:  # S = H(m − θ); U = βm + I − rθ | β(1 − r)m + I
            x = m - threshold
            r = fire(x)
            g_r = -threshold * g_u if subtract else -beta * m * g_u
            g_sx = (g_s + (0.0 if detach else g_r)) * h(x)
            g_in = g_u
            g_m = (beta if subtract else beta * (1.0 - r)) * g_u + g_sx
            d_beta = g_u * (m if subtract else (1.0 - r) * m)
            d_theta = -g_sx - (r * g_u if subtract else 0.0)
        elif options.reset_delay:  # U = βm + I − pθ | β(1 − p)m + I; S = H(U − θ)
            g_sx = (g_s + g_prev) * h(here - threshold)
            g_u = g_u + g_sx
            p = jnp.where(t > 0, fire(m - threshold), jnp.zeros_like(m))
            g_in = g_u
            g_m = (beta if subtract else beta * (1.0 - p)) * g_u
            d_beta = g_u * (m if subtract else (1.0 - p) * m)
            d_theta = -g_sx - (p * g_u if subtract else 0.0)
            g_prev = (
                jnp.zeros_like(g_u)
                if detach
                else (-threshold * g_u if subtract else -beta * m * g_u)
            )
        else:  # V = βm + I; S = H(V − θ); U = V − rθ | V(1 − r)
            x = here - threshold
            r = fire(x)
            g_r = -threshold * g_u if subtract else -here * g_u
            g_sx = (g_s + (0.0 if detach else g_r)) * h(x)
            g_in = (g_u if subtract else (1.0 - r) * g_u) + g_sx
            g_m = beta * g_in
            d_beta = g_in * m
            d_theta = -g_sx - (r * g_u if subtract else 0.0)
        if learn_beta:
            g_beta = g_beta + d_beta
        if learn_theta:
            g_theta = g_theta + d_theta
        g_in = g_in.astype(dtype)
        if const:  # a constant current's cotangent, summed here: XLA:CPU's sum over T is slow
            return (g_m.astype(dtype), g_prev, g_beta, g_theta, g_sum + g_in), None
        return (g_m.astype(dtype), g_prev, g_beta, g_theta, None), g_in

    zeros = jnp.zeros_like(resid[0])
    keep_prev = options.reset_delay and not options.fire_first
    init = (
        zeros,
        zeros if keep_prev else None,
        zeros if learn_beta else None,
        zeros if learn_theta else None,
        zeros if const else None,
    )
    ts = jnp.arange(resid.shape[0])
    (_, _, g_beta, g_theta, g_sum), g_cur = jax.lax.scan(
        step, init, (ts, resid, g_spikes.astype(dtype), g_mems.astype(dtype)), reverse=True
    )
    g_cur = g_sum if const else g_cur
    g_beta = _cotangent_like(g_beta, beta) if learn_beta else jnp.zeros_like(beta)  # pyright: ignore[reportArgumentType]
    g_theta = _cotangent_like(g_theta, threshold) if learn_theta else jnp.zeros_like(threshold)  # pyright: ignore[reportArgumentType]
    # The step does not depend on the unit's hyperparameters: zero cotangents.
    return g_cur, g_beta, g_theta, jax.tree.map(jnp.zeros_like, hp)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6, 7, 8))
def _lif(currents, beta, threshold, hp, spike, options, learn_beta, learn_theta, steps):
    """(spikes, membranes) of LIF over (T, B, ...) currents, or ``steps`` steps of one
    (B, ...) current, with the gradient of ``_bwd``: β and θ get gradient work only when
    ``learn_*`` (they are traced)."""
    return _fwd(currents, beta, threshold, hp, spike, options, learn_beta, learn_theta, steps)[0]


_lif.defvjp(_fwd, _bwd)


def lif_dynamics(
    currents: Array,
    *,
    beta: ArrayLike,
    threshold: ArrayLike,
    spike_fn: SpikeFn,
    reset: Reset = "subtract",
    detach_reset: bool = True,
    reset_delay: bool = False,
    spike_at_threshold: bool = True,
    fire_first: bool = False,
    num_steps: int | None = None,
) -> tuple[Array, Array]:
    """Runs the LIF update of :mod:`htaf_jax.spiking` over time.

    Args:
      currents: (T, B, ...) input currents, or, when ``num_steps`` is given, one
        time-constant current (B, ...) applied at every step (direct input: the
        layer before computed it once rather than T times).
      beta: decay β, a scalar or an array broadcasting against one step (B, ...).
      threshold: θ, broadcasting like ``beta``.
      spike_fn: x → {0, 1} with a surrogate gradient: a registry unit (its
        hyperparameters may be traced), or any elementwise callable with its
        own gradient.
      reset: "subtract" or "zero".
      detach_reset: no gradient through S in the reset term.
      reset_delay: apply a spike's reset at the next step (snnTorch).
      spike_at_threshold: H(0) = 1 (True) or 0 (False, snnTorch).
      fire_first: fire on the membrane carried in, before the step's input
        (Spyx); needs ``reset_delay``.
      num_steps: T for a time-constant current; None for a (T, B, ...) one.

    Returns:
      (spikes S, membrane U), both (T, B, ...).

    β and θ given as Python numbers are constants and get no gradient work;
    arrays (traced ones: learnable) get their gradients.
    """
    check_options(reset, reset_delay, fire_first)
    learn = (isinstance(beta, jax.core.Tracer), isinstance(threshold, jax.core.Tracer))  # pyright: ignore[reportAttributeAccessIssue]
    # The state keeps the currents' dtype (a scan carry cannot change type): the
    # neuron's parameters compute in it too, as under mixed precision they should.
    dtype = currents.dtype
    spike, hp = _spike_parts(spike_fn, spike_at_threshold)
    beta, threshold = jnp.asarray(beta, dtype), jnp.asarray(threshold, dtype)
    options = NeuronOptions(reset, detach_reset, reset_delay, spike_at_threshold, fire_first)
    currents = jnp.asarray(currents)
    return _lif(currents, beta, threshold, hp, spike, options, *learn, num_steps)


def if_dynamics(
    currents: Array, *, threshold: ArrayLike, spike_fn: SpikeFn, **options
) -> tuple[Array, Array]:
    """Integrate-and-fire: :func:`lif_dynamics` with β = 1 (no leak); same options."""
    return lif_dynamics(currents, beta=1.0, threshold=threshold, spike_fn=spike_fn, **options)
