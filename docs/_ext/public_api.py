"""Fails the build (a Sphinx warning, and ``-W``) when a public name is missing from the site.

For each module in ``public_api_modules``, every name in its ``__all__`` must be
documented somewhere in the API reference: under that name (``htaf_jax.nnx.LIF``), or,
for a class or function re-exported from elsewhere, as the same object under its other
public name (``htaf_jax.StepUnit`` documented as ``htaf_jax.units.StepUnit``). A
name in ``__all__`` that is itself a module (``htaf_jax.spiking``) is checked the same way,
names and all. autodoc leaves out members without a docstring, so a public function or
class without one is reported here too.
"""

from __future__ import annotations

import importlib
import inspect
import types

from sphinx.util import logging

logger = logging.getLogger(__name__)


def _resolve(fullname: str):
    """The object a dotted name documents (longest importable module prefix, then attributes)."""
    parts = fullname.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _public(module_name: str, seen: set[str]):
    """(module, name, object) for every public name, entering public submodules."""
    if module_name in seen:
        return
    seen.add(module_name)
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        logger.warning("public_api: %s has no __all__", module_name, type="public_api")
        return
    for name in names:
        obj = getattr(module, name)
        yield module_name, name, obj
        if isinstance(obj, types.ModuleType) and obj.__name__.startswith(module_name + "."):
            yield from _public(obj.__name__, seen)


def _by_identity(env) -> dict[int, str]:
    """id(object) -> the name the site documents it under (classes and functions)."""
    names = sorted(env.get_domain("py").data["objects"], key=len)
    found: dict[int, str] = {}
    for name in names:
        obj = _resolve(name)
        if inspect.isclass(obj) or inspect.isroutine(obj):
            found.setdefault(id(obj), name)
    return found


def check(app, env) -> None:
    domain = env.get_domain("py")
    documented = set(domain.data["objects"])
    modules = set(domain.data["modules"])
    by_identity = _by_identity(env)
    missing = []
    for module_name, name, obj in _public_all(app.config.public_api_modules):
        full = f"{module_name}.{name}"
        if isinstance(obj, types.ModuleType):
            ok = obj.__name__ in modules or full in modules
        else:
            ok = full in documented or (
                (inspect.isclass(obj) or inspect.isroutine(obj)) and id(obj) in by_identity
            )
        if not ok:
            missing.append(full)
    for full in missing:
        logger.warning(
            "public name %s is not in the API reference (no docstring, or no page "
            "documents it; see docs/api/)",
            full,
            type="public_api",
        )


def _public_all(module_names):
    seen: set[str] = set()
    for module_name in module_names:
        yield from _public(module_name, seen)


def resolve_alias(app, env, node, contnode):
    """A reference to one of our objects under another of its names
    (``htaf_jax.functions.straight_through`` for ``htaf_jax.straight_through``) links to
    the entry that documents it."""
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("htaf_jax."):
        return None
    obj = _resolve(target)
    if not (inspect.isclass(obj) or inspect.isroutine(obj)):
        return None
    if not hasattr(app, "_public_api_by_identity"):  # built once, when writing starts
        app._public_api_by_identity = _by_identity(env)
    name = app._public_api_by_identity.get(id(obj))
    if name is None or name == target:
        return None
    return env.get_domain("py").resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], name, node, contnode
    )


def setup(app):
    app.connect("missing-reference", resolve_alias)
    app.add_config_value("public_api_modules", [], "env")
    app.connect("env-check-consistency", check)
    return {"parallel_read_safe": True, "env_version": 1}
