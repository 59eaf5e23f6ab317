"""Spiking neurons over time, input encoders and readouts: pure JAX.

Time is the leading axis. A layer's input currents are (T, B, ...): the
parameterised op before the neuron (Dense, Conv) runs over all T steps at
once, and only the neuron's elementwise dynamics run in a ``lax.scan``
(SpikingJelly's multi-step mode). Nothing here holds parameters; the Linen
and NNX layers (``htaf_jax.linen.spiking``, ``htaf_jax.nnx.spiking``) pass
theirs in, and plain JAX, Equinox or Spyx code can call these directly.

LIF, per step t, with U[−1] = 0, input I[t], decay β, threshold θ, and H the
spike function (forward Heaviside, backward the surrogate's gradient):

  Default (``reset_delay=False``; SpikingJelly's charge → fire → reset):

    V[t] = β·U[t−1] + I[t]                  leak, then input
    S[t] = H(V[t] − θ)                      fire
    U[t] = V[t] − S[t]·θ                    reset="subtract" (soft reset)
    U[t] = V[t]·(1 − S[t])                  reset="zero"     (hard reset to 0)

  ``reset_delay=True`` (snnTorch's ``Leaky``, its default): a spike's reset is
  applied at the next step, before the leak of the zero reset:

    U[t] = β·U[t−1] + I[t] − S[t−1]·θ       reset="subtract"
    U[t] = β·(1 − S[t−1])·U[t−1] + I[t]     reset="zero"
    S[t] = H(U[t] − θ)

The membrane returned is U[t], the state carried to the next step.

The reset's gradient: with ``detach_reset`` (the default; SpikingJelly's
``detach_reset``) the S in the reset term is a constant for the gradient, so
only the firing path carries the surrogate gradient; without it the reset
term adds −θ·H'(V − θ) (subtract) or −V·H'(V − θ) (zero) to dU/dV (with
``reset_delay``, to dU[t+1]/dU[t]). H(0) = 1 (a membrane exactly at threshold
fires), as in the surrogate registry; ``spike_at_threshold=False`` gives
snnTorch's H(0) = 0 (it fires on U > θ), with the same gradient. IF is LIF
with β = 1.

The other neurons are this LIF with one change each (same options):
recurrent LIF adds R(S[t−1]) to I[t]; the synaptic neuron feeds it
I_syn[t] = α·I_syn[t−1] + I[t]; ALIF replaces θ by θ + γ·a[t], a[t] =
ρ·a[t−1] + (1 − ρ)·S[t−1] (see their functions).

snnTorch 1.0's ``Leaky`` (tests/test_spiking_snntorch.py checks every spike,
membrane and weight gradient on the same network):

- ``Leaky(reset_delay=True)`` (its default) is ``reset_delay=True,
  detach_reset=True, spike_at_threshold=False``: snnTorch recomputes the
  pending reset as a detached H(U[t−1] − θ), which is S[t−1].
- ``Leaky(reset_delay=False)`` is ``reset_delay=False, detach_reset=False,
  spike_at_threshold=False`` (its same-step reset keeps the spike's
  gradient), for the zero reset always and for the subtract reset while the
  membrane left after a reset stays below θ. Where it does not, snnTorch
  also subtracts the recomputed R = H(U[t−1] − θ)·θ before its firing test
  (and adds it back after), so that neuron needs V ≥ 2θ to fire again; we do
  not reproduce that.

``fire_first=True`` (Spyx's ordering; needs ``reset_delay=True``): each
step fires on the membrane carried in, before its input is added, and
resets at once:

    S[t] = H(U[t−1] − θ)                    fire on the carried membrane
    U[t] = β·U[t−1] + I[t] − S[t]·θ         reset="subtract"
    U[t] = β·(1 − S[t])·U[t−1] + I[t]       reset="zero"

This is the ``reset_delay=True`` update with each spike emitted one step
earlier, at the step whose reset it causes: the same membrane U[t], and S[t]
here is that update's S[t−1]. S[0] = H(−θ) is 0 for θ > 0, but its
surrogate gradient H'(−θ) reaches a learnable θ, where the shifted S[0] is a
constant. The scan carries only the membrane (and the adaptation), so this is
the cheaper way to run Spyx's neuron.

Memory: LIF and IF over (T, B, ...) currents with a registry surrogate of fixed
hyperparameters (outside ``shard_map``'s manual axes) take a hand-written
gradient (a custom VJP; tests/test_layers_spiking.py checks it against
autodiff of the general scan for every option). Its forward writes the one
stack the backward pass needs (U[t], or V[t] with the same-step reset) over
the currents and computes the spikes and membranes from it after the scan,
where autodiff of the scan keeps stacks of its own, and β and θ
get gradient work only when they are traced (learnable). Other neurons, spike
functions and learnable surrogate hyperparameters run the general scan.

Spyx 1.0's ``nn.LIF`` is ``reset_delay=True, fire_first=True,
detach_reset=False, spike_at_threshold=False`` (tests/test_spiking_spyx.py
checks spikes, membranes and gradients against it).
"""
from __future__ import annotations

import functools
import math
from typing import Callable, Literal, NamedTuple, Sequence

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from htaf_jax.functions import _step

__all__ = [
    "Reset", "NeuronOptions", "lif_dynamics", "if_dynamics", "recurrent_lif_dynamics",
    "synaptic_dynamics", "alif_dynamics", "leaky_integrate", "threshold_spike",
    "decay_to_logit", "neuron_param_shape",
    "to_intensity", "direct_encode", "rate_encode", "latency_encode",
    "membrane_readout", "spike_count_readout",
]

Reset = Literal["subtract", "zero"]
SpikeFn = Callable[[Array], Array]


def zeros_like_varying(x: Array) -> Array:
    """Zeros shaped like x, varying over the same manual mesh axes (inside
    ``shard_map`` a scan carry must have the per-device type of what the body
    adds to it)."""
    zeros = jnp.zeros_like(x)
    vma = manual_axes(x)
    return jax.lax.pcast(zeros, vma, to="varying") if vma else zeros


def manual_axes(x: Array) -> tuple[str, ...]:
    """The ``shard_map`` manual mesh axes x varies over (empty outside ``shard_map``)."""
    return tuple(getattr(jax.typeof(x), "vma", ()) or ())


def check_reset(reset: str) -> None:
    if reset not in ("subtract", "zero"):
        raise ValueError(f"reset must be 'subtract' or 'zero', got {reset!r}")


def check_options(reset: str, reset_delay: bool, fire_first: bool) -> None:
    """The reset name, and ``fire_first`` only with ``reset_delay``."""
    check_reset(reset)
    if fire_first and not reset_delay:
        raise ValueError(
            "fire_first=True emits the delayed reset's spikes one step earlier, so it needs "
            "reset_delay=True (Spyx's LIF: reset_delay=True, fire_first=True, "
            "detach_reset=False, spike_at_threshold=False)")


def threshold_spike(spike_fn: SpikeFn, x: Array, spike_at_threshold: bool = True) -> Array:
    """S = H(x) from ``spike_fn``; ``spike_at_threshold=False`` forces H(0) = 0.

    The correction is a constant for the gradient, so dS/dx is ``spike_fn``'s
    surrogate gradient everywhere, at x = 0 too.
    """
    s = spike_fn(x)
    if spike_at_threshold:
        return s
    return s - jax.lax.stop_gradient(jnp.where(x == 0, s, jnp.zeros_like(s)))


class NeuronOptions(NamedTuple):
    """The reset and firing options every neuron here shares (see the module docstring)."""
    reset: Reset = "subtract"
    detach_reset: bool = True
    reset_delay: bool = False
    spike_at_threshold: bool = True
    fire_first: bool = False


def _scan(currents: Array, num_steps: int | None, *, beta, threshold, spike_fn: SpikeFn,
          options: NeuronOptions, recurrent: Callable[[Array], Array] | None = None,
          adaptation: tuple[ArrayLike, ArrayLike] | None = None) -> tuple[Array, Array]:
    """One scan for every neuron: LIF, plus a recurrent current from S[t−1]
    and/or an adaptive threshold θ + γ·a[t] when given."""
    check_options(options.reset, options.reset_delay, options.fire_first)
    # Parameters that carry a gradient are traced values (constants are not).
    traced = (isinstance(beta, jax.core.Tracer), isinstance(threshold, jax.core.Tracer))
    subtract = options.reset == "subtract"
    # The state keeps the currents' dtype (a scan carry cannot change type): the
    # neuron's parameters compute in it too, as under mixed precision they should.
    dtype = currents.dtype
    beta, threshold = jnp.asarray(beta, dtype), jnp.asarray(threshold, dtype)
    if adaptation is not None:
        adaptation = tuple(jnp.asarray(a, dtype) for a in adaptation)

    def held(s):
        return jax.lax.stop_gradient(s) if options.detach_reset else s

    def fire(mem, thr):
        return threshold_spike(spike_fn, mem - thr, options.spike_at_threshold)

    # The previous spike and the adaptation are carried only when used (None
    # otherwise); fire_first recomputes the previous spike from the carried state.
    keep_spike = not options.fire_first and (
        options.reset_delay or recurrent is not None or adaptation is not None)

    def step(carry, cur):
        mem, prev, adapt = carry
        if options.fire_first:  # the delayed update's S[t−1], from U[t−1] and A[t−1]
            prev = fire(mem, threshold if adaptation is None
                        else threshold + adaptation[1] * adapt)
        if recurrent is not None:
            cur = cur + recurrent(prev).astype(dtype)
        thr = threshold
        if adaptation is not None:
            rho, gamma = adaptation
            adapt = rho * adapt + (1.0 - rho) * prev
            thr = threshold + gamma * adapt
        if options.reset_delay:
            r = held(prev)
            mem = beta * mem + cur - r * thr if subtract else beta * (1.0 - r) * mem + cur
            spike = prev if options.fire_first else fire(mem, thr)
        else:
            mem = beta * mem + cur
            spike = fire(mem, thr)
            r = held(spike)
            mem = mem - r * thr if subtract else mem * (1.0 - r)
        return (mem, spike if keep_spike else None, adapt), (spike, mem)

    if (recurrent is None and adaptation is None and num_steps is None
            and _hand_written_gradient(currents, spike_fn)):
        return _lif_lowmem(currents, beta, threshold, spike_fn, options, *traced)
    zeros = zeros_like_varying(currents if num_steps is not None else currents[0])
    init = (zeros, zeros if keep_spike else None, zeros if adaptation is not None else None)
    if num_steps is None:
        _, (spikes, mems) = jax.lax.scan(step, init, currents)
    else:
        _, (spikes, mems) = jax.lax.scan(lambda c, _: step(c, currents), init, None,
                                         length=num_steps)
    return spikes, mems


def _hand_written_gradient(currents: Array, spike_fn) -> bool:
    """The LIF's hand-written gradient applies: a registry surrogate with fixed
    hyperparameters (its ``grad`` is the spike's derivative), outside ``shard_map``'s
    manual axes (where autodiff places the collectives)."""
    from htaf_jax.units import StepUnit as Surrogate
    return (isinstance(spike_fn, Surrogate)
            and all(isinstance(v, float) for _, v in spike_fn.hparams)
            and not manual_axes(currents))


def _unbroadcast(g: Array, shape: tuple[int, ...]) -> Array:
    """Sums g (one step's shape) down to a parameter's broadcasting ``shape``."""
    lead = g.ndim - len(shape)
    g = jnp.sum(g, axis=tuple(range(lead))) if lead else g
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return jnp.sum(g, axis=axes, keepdims=True) if axes else g


def _lif_steps(options: NeuronOptions, threshold):
    """(fire, after_reset, subtract): the spike's value from its input x (a registry
    surrogate's forward is the step; the hand-written backward supplies the
    gradient), and the membrane once a spike resets it (the same-step reset)."""
    subtract = options.reset == "subtract"

    def fire(x):  # threshold_spike's forward value, in one comparison
        return _step(x, options.spike_at_threshold)

    def after_reset(v, r):  # the membrane V once a spike r resets it
        return v - r * threshold if subtract else v * (1.0 - r)

    return fire, after_reset, subtract


def _lif_lowmem_fwd(currents, beta, threshold, spike_fn, options, learn_beta, learn_theta):
    """The LIF forward as one scan that writes its residual over the currents
    (V[t] with the same-step reset, else U[t]) and stacks nothing else: the
    spikes and membranes are elementwise functions of the residual, computed
    after the scan where XLA can fuse them into their consumer (a loss, a sum)
    instead of the scan writing two more stacks. (spikes, membranes), residual."""
    fire, after_reset, subtract = _lif_steps(options, threshold)
    dtype = currents.dtype

    def step(carry, t):
        mem, buf = carry  # U[t−1]; the currents, overwritten up to t − 1
        cur = jax.lax.dynamic_index_in_dim(buf, t, keepdims=False)
        if options.fire_first or options.reset_delay:
            # The reset spike, from U[t−1]: fire_first's S[t], or the delayed reset's
            # S[t−1] (S[−1] = 0).
            r = fire(mem - threshold)
            if not options.fire_first:
                r = jnp.where(t > 0, r, jnp.zeros_like(r))
            mem = beta * mem + cur - r * threshold if subtract else \
                beta * (1.0 - r) * mem + cur
            keep = mem
        else:
            keep = beta * mem + cur
            mem = after_reset(keep, fire(keep - threshold))
        buf = jax.lax.dynamic_update_index_in_dim(buf, keep.astype(dtype), t, 0)
        return (mem, buf), None

    zeros = jnp.zeros_like(currents[0])
    (_, resid), _ = jax.lax.scan(step, (zeros, currents), jnp.arange(currents.shape[0]))
    if options.fire_first:  # S[t] = H(U[t−1] − θ), U[−1] = 0
        before = jnp.concatenate([zeros[None], resid[:-1]])
        spikes, mems = fire(before - threshold), resid
    elif options.reset_delay:  # S[t] = H(U[t] − θ); the residual is U
        spikes, mems = fire(resid - threshold), resid
    else:  # S[t] = H(V[t] − θ); U[t] = V[t] after the reset
        spikes = fire(resid - threshold)
        mems = after_reset(resid, spikes)
    return (spikes.astype(dtype), mems.astype(dtype)), (resid, beta, threshold)


def _lif_lowmem_bwd(spike_fn, options, learn_beta, learn_theta, res, cts):
    resid, beta, threshold = res
    g_spikes, g_mems = cts
    fire, after_reset, subtract = _lif_steps(options, threshold)
    detach = options.detach_reset
    dtype = resid.dtype
    h = spike_fn.grad

    def membrane_before(buf, t):
        """U[t−1] (0 at t = 0) from the residual of step t − 1."""
        prev = jax.lax.dynamic_index_in_dim(buf, jnp.maximum(t - 1, 0), keepdims=False)
        if not (options.fire_first or options.reset_delay):  # the residual is V
            prev = after_reset(prev, fire(prev - threshold))
        return jnp.where(t > 0, prev, jnp.zeros_like(prev))

    buf = resid  # read only: writing the gradient over it would need a copy per step

    def step(carry, xs):
        g_mem, g_prev, g_beta, g_theta = carry  # g_mem: dL/dU[t]; g_prev: dL/dS[t]
        t, g_s, g_u = xs
        m = membrane_before(buf, t)
        here = jax.lax.dynamic_index_in_dim(buf, t, keepdims=False)
        g_u = g_u + g_mem
        if options.fire_first:  # S = H(m − θ); U = βm + I − rθ | β(1 − r)m + I
            x = m - threshold
            r = fire(x)
            hx = h(x)
            g_r = (-threshold * g_u if subtract else -beta * m * g_u)
            g_sx = (g_s + (0.0 if detach else g_r)) * hx
            g_in = g_u
            g_m = (beta if subtract else beta * (1.0 - r)) * g_u + g_sx
            d_beta = g_u * (m if subtract else (1.0 - r) * m)
            d_theta = -g_sx - (r * g_u if subtract else 0.0)
            g_prev_out = g_prev
        elif options.reset_delay:  # U = βm + I − pθ | β(1 − p)m + I; S = H(U − θ)
            x = here - threshold
            hx = h(x)
            g_sx = (g_s + g_prev) * hx
            g_u = g_u + g_sx
            p = fire(m - threshold)
            p = jnp.where(t > 0, p, jnp.zeros_like(p))
            g_in = g_u
            g_m = (beta if subtract else beta * (1.0 - p)) * g_u
            d_beta = g_u * (m if subtract else (1.0 - p) * m)
            d_theta = -g_sx - (p * g_u if subtract else 0.0)
            g_p = -threshold * g_u if subtract else -beta * m * g_u
            g_prev_out = jnp.zeros_like(g_u) if detach else g_p
        else:  # V = βm + I; S = H(V − θ); U = V − rθ | V(1 − r)
            v = here
            x = v - threshold
            r = fire(x)
            hx = h(x)
            g_r = -threshold * g_u if subtract else -v * g_u
            g_sx = (g_s + (0.0 if detach else g_r)) * hx
            g_v = (g_u if subtract else (1.0 - r) * g_u) + g_sx
            g_in = g_v
            g_m = beta * g_v
            d_beta = g_v * m
            d_theta = -g_sx - (r * g_u if subtract else 0.0)
            g_prev_out = g_prev
        if learn_beta:
            g_beta = g_beta + d_beta
        if learn_theta:
            g_theta = g_theta + d_theta
        return (g_m.astype(dtype), g_prev_out, g_beta, g_theta), g_in.astype(dtype)

    zeros = jnp.zeros_like(resid[0])
    init = (zeros, zeros if options.reset_delay and not options.fire_first else None,
            zeros if learn_beta else None, zeros if learn_theta else None)
    ts = jnp.arange(resid.shape[0])
    (_, _, g_beta, g_theta), g_cur = jax.lax.scan(
        step, init, (ts, g_spikes.astype(dtype), g_mems.astype(dtype)), reverse=True)
    g_beta = (_unbroadcast(g_beta, beta.shape).astype(beta.dtype) if learn_beta
              else jnp.zeros_like(beta))
    g_theta = (_unbroadcast(g_theta, threshold.shape).astype(threshold.dtype) if learn_theta
               else jnp.zeros_like(threshold))
    return g_cur, g_beta, g_theta


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def _lif_lowmem(currents, beta, threshold, spike_fn, options, learn_beta, learn_theta):
    """LIF/IF over (T, B, ...) currents with a hand-written gradient whose forward
    keeps one (T, B, ...) stack for the backward pass, written over the currents
    (autodiff of the scan keeps stacks of its own): the same values and gradients
    as :func:`_scan`, in less memory."""
    return _lif_lowmem_fwd(currents, beta, threshold, spike_fn, options, learn_beta,
                           learn_theta)[0]


_lif_lowmem.defvjp(_lif_lowmem_fwd, _lif_lowmem_bwd)


def lif_dynamics(currents: Array, *, beta: ArrayLike, threshold: ArrayLike, spike_fn: SpikeFn,
                 reset: Reset = "subtract", detach_reset: bool = True,
                 reset_delay: bool = False, spike_at_threshold: bool = True,
                 fire_first: bool = False,
                 num_steps: int | None = None) -> tuple[Array, Array]:
    """Runs the LIF update of the module docstring over time.

    Args:
      currents: (T, B, ...) input currents, or, when ``num_steps`` is given, one
        time-constant current (B, ...) applied at every step (direct input: the
        layer before computed it once rather than T times).
      beta: decay β, a scalar or an array broadcasting against one step (B, ...).
      threshold: θ, broadcasting like ``beta``.
      spike_fn: x → {0, 1} with a surrogate gradient (a registry surrogate or
        any callable).
      reset: "subtract" or "zero".
      detach_reset: no gradient through S in the reset term.
      reset_delay: apply a spike's reset at the next step (snnTorch).
      spike_at_threshold: H(0) = 1 (True) or 0 (False, snnTorch).
      fire_first: fire on the membrane carried in, before the step's input
        (Spyx); needs ``reset_delay``.
      num_steps: T for a time-constant current; None for a (T, B, ...) one.

    Returns:
      (spikes S, membrane U), both (T, B, ...).
    """
    return _scan(currents, num_steps, beta=beta, threshold=threshold, spike_fn=spike_fn,
                 options=NeuronOptions(reset, detach_reset, reset_delay, spike_at_threshold,
                                       fire_first))


def if_dynamics(currents: Array, *, threshold: ArrayLike, spike_fn: SpikeFn,
                **options) -> tuple[Array, Array]:
    """Integrate-and-fire: :func:`lif_dynamics` with β = 1 (no leak); same options."""
    return lif_dynamics(currents, beta=1.0, threshold=threshold, spike_fn=spike_fn, **options)


def recurrent_lif_dynamics(currents: Array, *, recurrent: Callable[[Array], Array],
                           beta: ArrayLike, threshold: ArrayLike, spike_fn: SpikeFn,
                           num_steps: int | None = None, **options) -> tuple[Array, Array]:
    """Recurrent LIF: the LIF update with input I[t] + R(S[t−1]), S[−1] = 0.

    ``recurrent`` maps one step's spikes (B, ...) to a current of the same
    shape: all-to-all ``s @ W + b`` or one-to-one ``V·s`` (snnTorch's
    ``RLeaky(all_to_all=...)``). It runs inside the scan, so it must be a pure
    function of arrays (no Linen submodule). Options as :func:`lif_dynamics`.
    """
    return _scan(currents, num_steps, beta=beta, threshold=threshold, spike_fn=spike_fn,
                 options=NeuronOptions(**options), recurrent=recurrent)


def synaptic_dynamics(currents: Array, *, alpha: ArrayLike, beta: ArrayLike,
                      threshold: ArrayLike, spike_fn: SpikeFn, num_steps: int | None = None,
                      **options) -> tuple[Array, Array]:
    """Current-based synaptic LIF: a synaptic current with its own decay α feeds the LIF.

        I_syn[t] = α·I_syn[t−1] + I[t],  I_syn[−1] = 0
        then the LIF update with input I_syn[t]

    (snnTorch's ``Synaptic``). The synaptic current does not depend on the
    spikes, so it is computed before the neuron's scan
    (``leaky_integrate(currents, alpha)``). Options as :func:`lif_dynamics`.
    """
    if num_steps is not None:
        currents = jnp.broadcast_to(currents, (num_steps,) + currents.shape)
    return _scan(leaky_integrate(currents, alpha), None, beta=beta, threshold=threshold,
                 spike_fn=spike_fn, options=NeuronOptions(**options))


def alif_dynamics(currents: Array, *, beta: ArrayLike, threshold: ArrayLike,
                  adapt_decay: ArrayLike, adapt_scale: ArrayLike, spike_fn: SpikeFn,
                  num_steps: int | None = None, **options) -> tuple[Array, Array]:
    """Adaptive-threshold LIF (ALIF; Bellec et al. 2018, "Long short-term memory
    and learning-to-learn in networks of spiking neurons"):

        a[t] = ρ·a[t−1] + (1 − ρ)·S[t−1],  a[−1] = 0     (adaptation)
        A[t] = θ + γ·a[t]                                 (threshold)
        then the LIF update with A[t] in place of θ, in the firing test and the reset

    ρ = ``adapt_decay`` (Bellec's ρ = exp(−δt/τ_a)), γ = ``adapt_scale``
    (Bellec's β); each a scalar or an array broadcasting against one step
    (B, ...), like β and θ, so a layer can pass learnable ones (the Linen and
    NNX ``ALIF`` learn ρ as σ(logit) and γ as is). The adaptation's gradient
    flows through S[t−1] (no detach), and to ρ and γ through a[t] and A[t]
    (in the reset term too, where S itself may be detached). Options as
    :func:`lif_dynamics`.
    """
    return _scan(currents, num_steps, beta=beta, threshold=threshold, spike_fn=spike_fn,
                 options=NeuronOptions(**options), adaptation=(adapt_decay, adapt_scale))


def leaky_integrate(currents: Array, beta: ArrayLike) -> Array:
    """Non-spiking leaky integrator U[t] = β·U[t−1] + I[t], U[−1] = 0.

    (T, B, ...) → (T, B, ...).
    """
    beta = jnp.asarray(beta, currents.dtype)

    def step(mem, cur):
        mem = beta * mem + cur
        return mem, mem
    _, mems = jax.lax.scan(step, zeros_like_varying(currents[0]), currents)
    return mems


def decay_to_logit(beta: float, name: str = "beta") -> float:
    """The logit a learnable decay starts from: β = σ(logit) stays in (0, 1).
    ``name`` is the field the error message names."""
    if not 0.0 < beta < 1.0:
        raise ValueError(f"a learnable decay needs 0 < {name} < 1, got {beta}")
    return math.log(beta / (1.0 - beta))


def neuron_param_shape(features: Sequence[int], per_neuron: bool) -> tuple[int, ...]:
    """Shape of a learnable β, θ, α, ρ or γ: one per neuron (one step's feature shape) or shared ()."""
    return tuple(features) if per_neuron else ()


# --------------------------------------------------------------- encoders --
# Rate and latency codes need intensities p ∈ [0, 1]. Inputs arrive
# standardised by the caller's pipeline as (p − mean)/std; the caller passes
# that mean and std (0 and 1 for inputs already in [0, 1]).

def to_intensity(x: ArrayLike, mean: ArrayLike, std: ArrayLike) -> Array:
    """Standardised inputs → intensities p = clip(x·std + mean, 0, 1)."""
    return jnp.clip(jnp.asarray(x) * std + mean, 0.0, 1.0)


def direct_encode(x: Array) -> Array:
    """Direct (constant-current) coding: the input itself, at every step.

    Returned without a time axis on purpose: the first layer computes its
    current once and the neuron receives it at each of T steps
    (``lif_dynamics(..., num_steps=T)``).
    """
    return x


def rate_encode(key: Array, x: Array, num_steps: int, *, mean: ArrayLike,
                std: ArrayLike) -> Array:
    """Rate coding: at each step an input spikes with probability p, its intensity.

    (B, ...) → (T, B, ...) float spikes in {0, 1}, drawn with ``key``
    (snnTorch's ``spikegen.rate``). Each 32-bit random word gives two 16-bit
    uniforms u, and an input spikes when u < round(65536·p): the probability
    is p to within 2^-17 (exactly 0 and 1 at p = 0 and 1), from half the
    random words ``jax.random.bernoulli`` draws (the PRNG is the code's cost).
    """
    p = to_intensity(x, mean, std)
    words = jax.random.bits(key, ((num_steps + 1) // 2,) + x.shape, jnp.uint32)
    uniforms = jnp.concatenate([words & 0xFFFF, words >> 16])[:num_steps]
    level = jnp.round(p * 65536.0).astype(jnp.uint32)
    return (uniforms < level).astype(x.dtype)


def latency_encode(x: Array, num_steps: int, *, mean: ArrayLike, std: ArrayLike) -> Array:
    """Latency coding: one spike per input, brighter ones earlier.

    An input of intensity p fires once, at step round((1 − p)·(T − 1)) (the
    linear code of snnTorch's ``spikegen.latency(linear=True)``); p = 0 never
    fires. (B, ...) → (T, B, ...).
    """
    p = to_intensity(x, mean, std)
    t_fire = jnp.round((1.0 - p) * (num_steps - 1))
    steps = jnp.arange(num_steps, dtype=x.dtype).reshape((num_steps,) + (1,) * x.ndim)
    return ((steps == t_fire[None]) & (p[None] > 0.0)).astype(x.dtype)


# --------------------------------------------------------------- readouts --

def membrane_readout(currents: Array, beta: float = 0.0) -> Array:
    """(T, B, C) → (B, C): mean over time of a non-spiking leaky integrator's
    membrane (:func:`leaky_integrate`); β = 0 is the mean current."""
    mems = currents if beta == 0.0 else leaky_integrate(currents, beta)
    return jnp.mean(mems, axis=0)


def spike_count_readout(spikes: Array) -> Array:
    """(T, B, C) → (B, C): spike count per output neuron over the T steps."""
    return jnp.sum(spikes, axis=0)
