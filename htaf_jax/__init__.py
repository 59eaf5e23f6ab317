"""htaf_jax: the Heavy-Tailed Activation Function (HTAF) for JAX/Flax."""
__version__ = "0.1.0"
