"""Test configuration, in the spirit of equinox's: fake 8 CPU devices so the
multi-device code paths run in every test session, on any machine."""
import os

# Must happen before jax is imported anywhere in the test process.
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
    os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", False)

import pytest  # noqa: E402


@pytest.fixture
def count_trainings(monkeypatch):
    """The work dirs ``htaf_jax.train.train_and_evaluate`` is called with, in order."""
    import htaf_jax.train
    calls = []
    real = htaf_jax.train.train_and_evaluate

    def counting(config, workdir):
        calls.append(workdir)
        return real(config, workdir)

    monkeypatch.setattr(htaf_jax.train, "train_and_evaluate", counting)
    return calls
