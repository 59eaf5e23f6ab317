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

  ``fire_first=True`` (Spyx's ordering; needs ``reset_delay=True``): each
  step fires on the membrane carried in, before its input is added, and
  resets at once:

    S[t] = H(U[t−1] − θ)                    fire on the carried membrane
    U[t] = β·U[t−1] + I[t] − S[t]·θ         reset="subtract"
    U[t] = β·(1 − S[t])·U[t−1] + I[t]       reset="zero"

  This is the ``reset_delay=True`` update with each spike emitted one step
  earlier, at the step whose reset it causes. S[0] = H(−θ) is 0 for θ > 0,
  but its surrogate gradient reaches a learnable θ.

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

Peers (the tests check every spike, membrane and gradient against them):

- snnTorch 1.0's ``Leaky(reset_delay=True)`` (its default) is
  ``reset_delay=True, detach_reset=True, spike_at_threshold=False``;
  ``Leaky(reset_delay=False)`` is ``reset_delay=False, detach_reset=False,
  spike_at_threshold=False`` while the membrane left after a subtract reset
  stays below θ (where it does not, snnTorch needs V ≥ 2θ to fire again; we do
  not reproduce that).
- Spyx 1.0's ``nn.LIF`` is ``reset_delay=True, fire_first=True,
  detach_reset=False, spike_at_threshold=False``.

Cost: one scan per neuron family, linear in T for every option. LIF, IF and
the synaptic neuron (``htaf_jax.spiking.lif``) run one scan with a
hand-written gradient whose only residual is one (T, B, ...) stack, written
over the currents in place; the recurrent LIF and ALIF, whose step needs the
previous spike inside it (``htaf_jax.spiking.neurons``), run a scan that
autodiff differentiates. tests/test_layers_spiking.py checks that no compiled
loop copies anything of size T.
"""

from htaf_jax.spiking.encoders import direct_encode, latency_encode, rate_encode, to_intensity
from htaf_jax.spiking.fields import (
    ALIFFields,
    IFFields,
    LIFFields,
    RecurrentLIFFields,
    SynapticFields,
    build_fields,
    check_decay,
    check_positive_threshold,
    decay_to_logit,
)
from htaf_jax.spiking.lif import (
    NeuronOptions,
    Reset,
    check_options,
    if_dynamics,
    lif_dynamics,
    threshold_spike,
)
from htaf_jax.spiking.neurons import (
    alif_dynamics,
    neuron_param_shape,
    recurrent_lif_dynamics,
    synaptic_dynamics,
)
from htaf_jax.spiking.readouts import leaky_integrate, membrane_readout, spike_count_readout

__all__ = [
    "Reset",
    "NeuronOptions",
    "lif_dynamics",
    "if_dynamics",
    "recurrent_lif_dynamics",
    "synaptic_dynamics",
    "alif_dynamics",
    "leaky_integrate",
    "threshold_spike",
    "decay_to_logit",
    "neuron_param_shape",
    "check_options",
    "LIFFields",
    "IFFields",
    "RecurrentLIFFields",
    "SynapticFields",
    "ALIFFields",
    "build_fields",
    "check_decay",
    "check_positive_threshold",
    "to_intensity",
    "direct_encode",
    "rate_encode",
    "latency_encode",
    "membrane_readout",
    "spike_count_readout",
]
