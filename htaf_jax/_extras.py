"""One-line errors for the parts of htaf_jax behind an install extra.

``pip install htaf-jax`` gives the core, ``htaf_jax.linen``, ``htaf_jax.nnx``
and ``htaf_jax.models`` (jax, flax, optax, chex). The engine, the data
pipeline and the interpretation tools need the ``[train]`` extra; importing
them without it raises one ImportError that names it.
"""

from __future__ import annotations

import importlib.util

__all__ = ["require_extra"]


def require_extra(extra: str, package: str, *modules: str) -> None:
    """Raises ImportError naming ``extra`` if any of ``modules`` is not installed."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(
            f"{package} needs the [{extra}] extra: pip install 'htaf-jax[{extra}]' "
            f"(missing: {', '.join(missing)})"
        )
