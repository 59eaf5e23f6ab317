"""A model summary by bit width, like Larq's ``lq.models.summary``, for Linen models.

``summarize(model, variables, *args, **kwargs)`` runs the model once (one jitted
program, on the arguments given) and profiles every layer it calls:

- parameters by bit width: a quantized kernel counts at its quantizer's
  bit width (``htaf_jax.units``; ``BinaryDense``/``BinaryConv`` kernels
  at 1 bit), every other parameter at 32. A BatchNorm counts 2 numbers per
  channel, the scale and shift it folds into at inference, as Larq's fused
  count does (its mean/variance pairs with γ/β).
- any other module that holds parameters itself (a PReLU's slopes, a block's
  learned thresholds): those at 32 bits, no MACs.
- memory: Σ bits × count, i.e. packed; the float32 equivalent is 32 × count;
  ``compression_ratio`` is memory / float32 memory (Larq's "Compression
  Ratio of Memory"; 1/32 for an all-binary network).
- MACs of dense and convolution layers: kernel size × output pixels (1 for a
  dense layer), at precision max(input precision, kernel bits), as Larq. The
  input precision is the input quantizer's; without one it is 1 when the
  values the layer receives are all ±1 (a binary activation computed by the
  model before it, as in ``BinaryMLP``), else 32.

Not counted: XNOR-Net's per-channel scales (derived from the kernel, not
parameters; ``bnn_export.packed_memory_report`` counts what the export stores).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from htaf_jax.binary import LATENT_KERNEL
from htaf_jax.linen.binary import BinaryConv, BinaryDense, QuantConv, QuantDense
from htaf_jax.linen.heaviside import HeavisideDense
from htaf_jax.units import bits_of

__all__ = ["LayerProfile", "ModelSummary", "summarize"]

_MAC_LAYERS = (QuantDense, QuantConv, BinaryDense, BinaryConv, HeavisideDense, nn.Dense, nn.Conv)
_BINARY_LAYERS = (BinaryDense, BinaryConv)


@dataclasses.dataclass(frozen=True)
class LayerProfile:
    name: str  # the module path, e.g. "dense1"
    kind: str  # the class name
    input_precision: int | None  # bits of the inputs the products see; None: no MACs
    output_shape: tuple[int, ...]
    params: dict[int, int]  # bit width → number of parameters
    macs: dict[int, int]  # precision → multiply-accumulates (one example)

    @property
    def memory_bits(self) -> int:
        return sum(bits * n for bits, n in self.params.items())

    @property
    def float32_bits(self) -> int:
        return 32 * sum(self.params.values())


@dataclasses.dataclass(frozen=True)
class ModelSummary:
    layers: tuple[LayerProfile, ...]

    def _sum(self, attr: str) -> Counter:
        total: Counter = Counter()
        for layer in self.layers:
            total.update(getattr(layer, attr))
        return total

    @property
    def params(self) -> dict[int, int]:
        return dict(sorted(self._sum("params").items()))

    @property
    def macs(self) -> dict[int, int]:
        return dict(sorted(self._sum("macs").items()))

    @property
    def total_params(self) -> int:
        return sum(self.params.values())

    @property
    def memory_bytes(self) -> float:
        return sum(layer.memory_bits for layer in self.layers) / 8

    @property
    def float32_bytes(self) -> float:
        return sum(layer.float32_bits for layer in self.layers) / 8

    @property
    def compression_ratio(self) -> float:
        return self.memory_bytes / max(self.float32_bytes, 1e-8)

    @property
    def total_macs(self) -> int:
        return sum(self.macs.values())

    @property
    def binary_mac_ratio(self) -> float:
        return self.macs.get(1, 0) / max(self.total_macs, 1)

    def table(self) -> str:
        """The per-layer table and the totals, as text."""
        bits, precisions = sorted(self.params), sorted(self.macs)
        header = (
            ["Layer", "Input prec.", "Outputs"]
            + [f"# {b}-bit" for b in bits]
            + ["Memory (kB)"]
            + [f"{p}-bit MACs" for p in precisions]
        )
        rows = [
            [layer.name, str(layer.input_precision or "-"), str(layer.output_shape)]
            + [str(layer.params.get(b, 0)) for b in bits]
            + [f"{layer.memory_bits / 8 / 1024:.2f}"]
            + [str(layer.macs.get(p, 0)) for p in precisions]
            for layer in self.layers
        ]
        rows.append(
            ["Total", "", ""]
            + [str(self.params[b]) for b in bits]
            + [f"{self.memory_bytes / 1024:.2f}"]
            + [str(self.macs[p]) for p in precisions]
        )
        widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
        line = lambda r: " | ".join(c.rjust(w) for c, w in zip(r, widths))
        lines = [line(header), "-+-".join("-" * w for w in widths)] + [line(r) for r in rows]
        lines += [
            "",
            f"Total params: {self.total_params}",
            f"Model size: {self.memory_bytes / 1024:.2f} kB",
            f"Float-32 equivalent: {self.float32_bytes / 1024:.2f} kB",
            f"Compression ratio of memory: {self.compression_ratio:.4f}",
            f"Number of MACs: {self.total_macs}",
            f"Ratio of MACs that are binarized: {self.binary_mac_ratio:.4f}",
        ]
        return "\n".join(lines)

    __str__ = table


def _kernel_bits(module: nn.Module) -> int:
    if isinstance(module, _BINARY_LAYERS):
        return 1
    if isinstance(module, (QuantDense, QuantConv)):
        return bits_of(module.kernel_quantizer)
    return 32


def _input_precision(module: nn.Module, x: Any) -> int | jax.Array:
    """The input quantizer's precision; without one, whether the values the layer receives
    are all ±1 (1) or not (32): a traced flag, read after the run (see ``summarize``)."""
    if isinstance(module, (QuantDense, QuantConv)) and module.input_quantizer is not None:
        return bits_of(module.input_quantizer)
    if not np.size(x):
        return 32
    return jnp.where(jnp.all(jnp.abs(x) == 1.0), 1, 32)


def _profile(module: nn.Module, x: Any, y: Any) -> tuple[LayerProfile, int, Any]:
    """The layer's profile with ``macs`` at the kernel's bits, the kernel's bits, and its
    input precision (an int, or a traced flag for an input without a quantizer)."""
    own, kind = _own_params(module), type(module).__name__
    output_shape = tuple(np.shape(y))[1:] if hasattr(y, "shape") else ()
    if not isinstance(module, _MAC_LAYERS):  # parameters, no MACs
        batch_norm = isinstance(module, nn.BatchNorm)  # counts its folded scale and shift
        count = (
            2 * int(np.shape(y)[-1]) if batch_norm else sum(int(np.size(v)) for v in own.values())
        )
        kind = "BatchNorm" if batch_norm else kind
        return LayerProfile(_name(module), kind, None, output_shape, {32: count}, {}), 32, None
    kernel_bits = _kernel_bits(module)
    params: Counter = Counter()
    kernel_size = 0
    for name, value in own.items():
        is_kernel = name in ("kernel", LATENT_KERNEL)
        params[kernel_bits if is_kernel else 32] += int(np.size(value))
        kernel_size += int(np.size(value)) if is_kernel else 0
    pixels = int(np.prod(output_shape[:-1])) if len(output_shape) == 3 else 1
    macs = {kernel_bits: kernel_size * pixels}
    profile = LayerProfile(_name(module), kind, None, output_shape, dict(params), macs)
    return profile, kernel_bits, _input_precision(module, x)


def _own_params(module: nn.Module) -> dict:
    """The parameters the module holds itself (not through its submodules), by name."""
    return {k: v for k, v in module.variables.get("params", {}).items() if not isinstance(v, dict)}


def _name(module: nn.Module) -> str:
    return "/".join(module.path) or type(module).__name__


def summarize(model: nn.Module, variables: Any, *args, **kwargs) -> ModelSummary:
    """Profiles every dense, convolution, quantized and BatchNorm layer, and every other
    module with parameters of its own, that
    ``model.apply(variables, *args, **kwargs)`` calls (in call order).

    The model runs once, as one jitted program (shapes and parameters are read while
    tracing; whether a layer's input is all ±1 comes back as the program's output), so
    a large network is summarised in about the time one compile takes. Run it on a small
    batch. MACs are per example (the output shape without its batch axis).
    """
    layers: list = []  # (profile, kernel bits, input precision) per layer, in call order

    def run(variables, *args):
        del layers[:]  # a retrace starts over

        def record(next_fun, call_args, call_kwargs, context):
            module = context.module
            if context.method_name != "__call__" or not (
                isinstance(module, _MAC_LAYERS + (nn.BatchNorm,)) or _own_params(module)
            ):
                return next_fun(*call_args, **call_kwargs)
            index = len(layers)
            layers.append(None)  # a parent precedes the layers it calls
            out = next_fun(*call_args, **call_kwargs)
            layers[index] = _profile(module, call_args[0] if call_args else None, out)
            return out

        with nn.intercept_methods(record):
            model.apply(variables, *args, mutable=True, **kwargs)
        return [jnp.asarray(0 if p is None else p) for _, _, p in layers]

    flags = jax.device_get(jax.jit(run)(variables, *args))
    out = []
    for (profile, kernel_bits, _), flag in zip(layers, flags):
        bits = int(flag)  # Larq: MACs at max(input precision, kernel bits)
        macs = {max(bits, kernel_bits): sum(profile.macs.values())}
        out.append(
            dataclasses.replace(profile, input_precision=bits, macs=macs)
            if profile.macs
            else profile
        )
    return ModelSummary(tuple(out))
