"""The train state is donated to the jitted step: the old buffers are deleted, and the
compiled step aliases them to the new state instead of holding two copies."""

import jax
import ml_collections
import numpy as np
import optax
import pytest

from htaf_jax.models import build_model
from htaf_jax.train import step as step_lib


def _setup(donate, num_devices=None):
    num_devices = num_devices or jax.device_count()  # every fake device of the session
    model = build_model(
        ml_collections.ConfigDict(dict(name="mlp", hidden_sizes=(16,), batch_norm=True)),
        num_classes=10,
    )
    mesh, tx = step_lib.make_mesh(num_devices), optax.adam(1e-3)
    state, rng = step_lib.replicate(
        (step_lib.init_state(model, tx, jax.random.key(0), (28, 28, 1)), jax.random.key(1)), mesh
    )
    rows = np.random.default_rng(0)
    batch = step_lib.shard_batch(
        (
            rows.normal(size=(16, 28, 28, 1)).astype(np.float32),
            rows.integers(0, 10, 16).astype(np.int32),
        ),
        mesh,
    )
    return step_lib.make_train_step(model, tx, mesh, donate=donate), state, batch, rng


def test_the_old_state_is_deleted_by_the_step():
    train_step, state, batch, rng = _setup(donate=True)
    old = state
    state, _ = train_step(state, *batch, rng)
    state, _ = train_step(state, *batch, rng)  # the new state is a valid input again
    leaves = jax.tree.leaves(old)
    assert len(leaves) > 6 and all(x.is_deleted() for x in leaves)
    with pytest.raises(RuntimeError, match="deleted"):
        np.asarray(old.params["dense0"]["kernel"])
    assert not any(x.is_deleted() for x in jax.tree.leaves(state))
    assert not any(x.is_deleted() for x in jax.tree.leaves((batch, rng)))  # not donated


def test_without_donation_the_old_state_stays_readable():
    train_step, state, batch, rng = _setup(donate=False)
    new, _ = train_step(state, *batch, rng)
    assert not any(x.is_deleted() for x in jax.tree.leaves(state))
    assert int(state.step) == 0 and int(new.step) == 1


def test_the_compiled_step_aliases_the_whole_state():
    """XLA's own accounting: with donation every byte of the state is an alias of an
    output buffer; without it none is, and the step holds both copies."""
    sizes, live = {}, {}
    for donate in (False, True):
        train_step, state, batch, rng = _setup(donate, num_devices=1)
        a = train_step.jitted.lower(state, *batch, rng).compile().memory_analysis()
        sizes[donate] = a.alias_size_in_bytes
        live[donate] = (
            a.argument_size_in_bytes
            + a.output_size_in_bytes
            - a.alias_size_in_bytes
            + a.temp_size_in_bytes
        )
        state_bytes = sum(x.nbytes for x in jax.tree.leaves(state))
    assert sizes[False] == 0
    assert sizes[True] == state_bytes
    # The update is written in place: the step holds one state fewer, not a copy in
    # temporaries instead (which a select between the new and the old state made).
    assert live[False] - live[True] >= 0.9 * state_bytes


def test_a_state_made_non_finite_by_an_update_is_seen_before_a_checkpoint():
    _, state, _, _ = _setup(donate=True)
    assert step_lib.state_is_finite(state)
    params = jax.tree.map(lambda x: x, state.params)
    params["dense0"]["kernel"] = params["dense0"]["kernel"].at[0, 0].set(np.inf)
    assert not step_lib.state_is_finite(state.replace(params=params))
