"""NIR exchange: spiking networks to and from the Neuromorphic Intermediate Representation.

The network. A :class:`SpikingSequential` is an ordered list of Flax NNX
layers run over time, each on the whole (T, B, ...) sequence:
``nnx.Linear``, ``nnx.Conv`` (2-D), :class:`Flatten`, and the neurons of
``htaf_jax.nnx`` (a neuron passes its spikes on); :func:`from_linen` builds
one from Linen layers and their parameters. Data is in our layout,
features last (NHWC images); NIR's is channels first (CHW), so convolution
kernels (OIHW ↔ HWIO), per-neuron parameters of a conv map (CHW ↔ HWC) and
the columns of the first dense layer after a flatten are permuted on the
way; the spikes are the same::

    ours                          NIR
    LIF (β < 1) / IF (β = 1)      LIF / IF
    Synaptic                      CubaLIF
    RecurrentLIF                  LIF with an Affine (all-to-all) or a diagonal
                                  Linear (one-to-one) from its output back to
                                  its input, the cycle snnTorch writes for RLeaky
    nnx.Linear, nnx.Conv, Flatten Affine/Linear, Conv2d, Flatten
    ALIF                          none (refused)

Time. NIR is continuous: LIF is τ·v̇ = (v_leak − v) + R·I, a spike when v > θ,
then v ← v_reset; IF is v̇ = R·I; CubaLIF adds τ_syn·İ = −I + w_in·S before
it. We step it with forward Euler and step dt, as snnTorch's
``export_nir``/``import_nir`` do (dt = 1e-4, :data:`DT`)::

    v[t] = (1 − dt/τ)·v[t−1] + (dt/τ)·R·I[t]      β = 1 − dt/τ,  τ = dt/(1 − β)
    IF:    v[t] = v[t−1] + dt·R·I[t]
    CubaLIF: I[t] = (1 − dt/τ_syn)·I[t−1] + (dt/τ_syn)·w_in·S[t]   α = 1 − dt/τ_syn

Export writes R = τ/dt (IF: R = 1/dt) and w_in = τ_syn/dt, so inputs enter
with weight 1 and v_leak = v_reset = 0: exactly snnTorch's ``Leaky`` →
``nir.LIF`` and ``Synaptic`` → ``nir.CubaLIF`` mappings. Import reads a
total input weight w (R·dt/τ, times w_in·dt/τ_syn) other than 1 as the
threshold θ/w, which gives the same spikes (the membrane is linear in its
input and resets to 0), as snnTorch's importer does. τ is computed in
float64 and stored as float32 (as snnTorch stores it); β read back through
float64 is the float32 β that went out.

Neurons. NIR's neurons reset to v_reset at once and fire on v > θ, so the
neurons that round-trip are ``reset="zero", reset_delay=False,
spike_at_threshold=False`` (snnTorch's ``Leaky(reset_mechanism="zero",
reset_delay=False)``): :func:`from_nir` builds those, and :func:`to_nir`
refuses a subtract or delayed reset (NIR cannot say it). A neuron with
H(0) = 1 exports as NIR's v > θ: the two differ only when a membrane lands
exactly on θ. A β, α or θ that varies over neurons is imported as a fixed
per-neuron array (``LIF(beta=array)``), so the values stay exact.

Needs the ``nir`` package (``pip install nir``); imported when used.
"""

from htaf_jax.nir.network import DT, Flatten, SpikingSequential, from_linen
from htaf_jax.nir.reader import from_nir
from htaf_jax.nir.writer import to_nir

__all__ = ["DT", "Flatten", "SpikingSequential", "from_linen", "to_nir", "from_nir"]
