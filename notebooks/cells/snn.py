"""02_snn_train.ipynb: a spiking MLP on Fashion-MNIST, HTAF against atan, spike rates per layer."""

from cells.common import DATA_CHECK, DATA_MD, INSTALL, setup

CELLS = [
    (
        "md",
        r"""
# Train a spiking network on Fashion-MNIST with HTAF

A leaky integrate-and-fire (LIF) neuron keeps a membrane potential $U$, charges it with
the input current $I$, emits a binary spike when it reaches the threshold $\theta$, and
subtracts $\theta$ after a spike (`htaf_jax.spiking`):

$$U'_t = \beta\,U_{t-1} + I_t,\qquad S_t = H(U'_t - \theta) \in \{0, 1\},\qquad
U_t = U'_t - S_t\,\theta .$$

The Heaviside step $H$ has zero gradient almost everywhere, so the network trains with a
**surrogate gradient**: the forward pass spikes, the backward pass uses a smooth stand-in for
$H'$. Here that stand-in is HTAF's derivative,
$\mathrm{htaf}'(x) = \alpha\beta\,\sigma(u)\sigma(-u)\,\mathrm{sech}^2(\beta x)$ with
$u = \alpha\tanh(\beta x)$, and we compare it with the arctan surrogate of
snnTorch and SpikingJelly, $\tfrac{\alpha}{2} / \big(1 + (\tfrac{\pi}{2}\alpha x)^2\big)$, on the same
network, data and budget.

The network is `experiments/configs/snn_mlp.py` (`htaf_jax.models.SpikingMLP`): with the
config's direct encoding the standardised image is a constant input current at each of the
$T$ time steps (`encoding="rate"` would feed Bernoulli spike frames instead), each hidden
layer is Dense → LIF (β = 0.9, θ = 1, subtract reset), and the output is the mean membrane
of a non-spiking readout. This notebook gives it **two** hidden layers (the config has one)
so there are spike rates per layer to compare. It shows

1. the two surrogate gradients side by side;
2. training curves (loss, accuracy) and each layer's spike rate during training;
3. spike rates per layer after training: over the $T$ time steps, per neuron, and one
   example's spike raster;
4. a summary table.

`SMALL=1` is a smoke run: 128-64 hidden units, $T = 8$, 2,000 images for 2 epochs per
surrogate, 1,000 test images (well under a minute for the whole notebook on 2 CPU cores).
Without it: 1000-500 hidden units and the config's $T = 25$, all 60,000 images and the
config's number of epochs, per surrogate — a GPU runtime is the place for that.
""",
    ),
    INSTALL,
    setup(
        extra_imports="""
import time

from htaf_jax.models import build_model
from htaf_jax.linen.spiking import LIF
from htaf_jax.train import load_config, train_and_evaluate
from htaf_jax.train.metrics import read_metrics
from experiments.configs import snn_mlp
"""
    ),
    DATA_MD,
    DATA_CHECK,
    (
        "md",
        r"""
## 1. The two surrogates

HTAF takes the config's α and β (`config.model.surrogate_kwargs.htaf`), atan its registry
default α = 2; at the values printed below both peak at the same gradient at $x = 0$. They
differ away from it: near threshold HTAF's gradient is the broader one, while far from it
atan's decays like $1/x^2$ and HTAF's like $e^{-2\beta|x|}$. ("Heavy-tailed" is relative
to a sigmoid of the same peak slope, which decays like $e^{-\alpha\beta|x|}$; atan's power law is
heavier still.) So with HTAF a neuron far from threshold gets almost no gradient.
""",
    ),
    (
        "code",
        r"""
SURROGATES = ["htaf", "atan"]
COLORS = {"htaf": "k", "atan": "tab:orange"}

kwargs = snn_mlp.get_config().model.surrogate_kwargs
x = jnp.linspace(-4, 4, 801)
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
for name in SURROGATES:
    s = H.get_unit(name, **kwargs.get(name, {}))
    print(f"{name}: {s.kwargs}, gradient at 0: {float(s.grad(0.0)):.3f}, "
          f"at 3: {float(s.grad(3.0)):.2e}")
    label = f"{name} {s.kwargs}"
    axes[0].plot(x, s.grad(x), color=COLORS[name], label=label)
    axes[1].semilogy(x, s.grad(x), color=COLORS[name], label=label)
axes[0].set(title="surrogate gradient used for ∂S/∂U", xlabel="U − θ", ylabel="∂S/∂U")
axes[1].set(title="same, log scale", xlabel="U − θ", ylabel="∂S/∂U")
for ax in axes:
    ax.legend(fontsize=8)
fig.tight_layout()
savefig(fig, "02_surrogates")
plt.show()
""",
    ),
    (
        "md",
        r"""
## 2. Train, once per surrogate

`train_and_evaluate(config, workdir)` is the trainer every experiment uses. It writes
`metrics.jsonl` (with each layer's sown `spike_rate_layer{i}` averaged over the logging
interval), checkpoints and `summary.json` to the work dir, and **resumes** from the latest
checkpoint there, so running this cell again after finished runs only re-evaluates. Delete
the work dirs to start over. Only `config.model.surrogate` differs between the two runs.
""",
    ),
    (
        "code",
        r"""
def snn_config(surrogate):
    config = snn_mlp.get_config()
    config.tensorboard = False
    config.model.surrogate = surrogate
    config.model.hidden = (1000, 500)  # two hidden layers: spike rates per layer
    if SMALL:
        config.model.hidden = (128, 64)
        config.model.num_steps = 8
        config.train_subset = 2000
        config.test_subset = 1000
        config.num_epochs = 2
        config.log_every_steps = 5
    return config


config = snn_config("htaf")
print("model:", dict(config.model))
print(f"train on {config.train_subset if config.train_subset > 0 else 'all'} images, "
      f"{config.num_epochs} epochs, batch {config.batch_size}, lr {config.learning_rate} "
      f"({config.optimizer}, {config.schedule})")

results, workdirs, seconds = {}, {}, {}
for name in SURROGATES:
    workdirs[name] = f"workdirs/snn_{name}" + ("_small" if SMALL else "")
    start = time.time()
    results[name] = train_and_evaluate(snn_config(name), workdirs[name])
    seconds[name] = time.time() - start
    print(f"{name:5s} test accuracy {results[name].metrics['test/accuracy']:.4f} "
          f"({seconds[name]:.0f} s, work dir {workdirs[name]})")
""",
    ),
    (
        "md",
        r"""
### Training curves and spike rates during training

Train records are means over the last `log_every_steps` steps; test records come once an
epoch. The right panel reads the `spike_rate_layer{i}` fields: the share of (neuron, time
step, example) triples that spiked.
""",
    ),
    (
        "code",
        r"""
records = {name: read_metrics(workdirs[name]) for name in SURROGATES}
rate_keys = sorted(k for k in records["htaf"][0] if k.startswith("spike_rate"))
print("spike-rate fields in metrics.jsonl:", rate_keys)

fig, axes = plt.subplots(1, 3, figsize=(17, 4.2))
for name in SURROGATES:
    train = [r for r in records[name] if r["split"] == "train"]
    test = [r for r in records[name] if r["split"] == "test"]
    c = COLORS[name]
    for ax, key in zip(axes[:2], ["loss", "accuracy"]):
        ax.plot([r["step"] for r in train], [r[key] for r in train], color=c, alpha=0.6,
                label=f"{name} train")
        ax.plot([r["step"] for r in test], [r[key] for r in test], "o--", color=c,
                label=f"{name} test")
    for key, style in zip(rate_keys, ["-", ":", "-.", "--"]):
        axes[2].plot([r["step"] for r in train], [r[key] for r in train], style, color=c,
                     label=f"{name} hidden layer {key[len('spike_rate_layer'):]}")
axes[0].set(title="cross-entropy loss", xlabel="step", ylabel="loss")
axes[1].set(title="accuracy", xlabel="step", ylabel="accuracy")
axes[2].set(title="spike rate per layer (train batches)", xlabel="step",
            ylabel="spikes per neuron per time step")
for ax in axes:
    ax.legend(fontsize=8)
fig.tight_layout()
savefig(fig, "02_training")
plt.show()
""",
    ),
    (
        "md",
        r"""
## 3. Spike rates per layer, after training

We run each trained model forward on a batch of test images and keep the spikes:
`capture_intermediates` records what every LIF module returns, `(spikes, membranes)` of shape
(T, B, N), and `mutable=["intermediates"]` also returns the rates the model sows, which must
be the means of those spikes. The forward pass gets a `sample` key, which only rate encoding
uses (to draw its input spikes).
""",
    ),
    (
        "code",
        r"""
# The same splits as the trainer's: the normaliser is fitted on the training images.
splits = data_lib.load_splits(config.dataset, config.get("data_dir"),
                              train_subset=config.train_subset, test_subset=config.test_subset)
batch = splits.normalizer(splits.eval.images[:512])
labels = splits.eval.labels[:512]


def layer_spikes(name):
    cfg = load_config(workdirs[name])
    model = build_model(cfg.model)
    logits, state = model.apply(
        {"params": results[name].params}, batch, train=False,
        rngs={"sample": jax.random.key(0)}, mutable=["intermediates"],
        capture_intermediates=lambda module, method: isinstance(module, LIF))
    inter = state["intermediates"]
    spikes = [np.asarray(inter[f"lif{i}"]["__call__"][0][0]) for i in range(len(cfg.model.hidden))]
    for i, s in enumerate(spikes):  # the sown rate is the mean of the captured spikes
        sown = float(inter[f"spike_rate_layer{i}"][0])
        assert set(np.unique(s)) <= {0.0, 1.0}, f"layer {i}: spikes are not binary"
        assert np.isclose(sown, s.mean(), atol=1e-6), (i, sown, s.mean())
    accuracy = float(np.mean(np.asarray(logits).argmax(-1) == labels))
    return spikes, accuracy


spikes, batch_acc = {}, {}
for name in SURROGATES:
    spikes[name], batch_acc[name] = layer_spikes(name)
    print(name, "spikes (T, B, N) per layer:", [s.shape for s in spikes[name]],
          "| mean rates:", [round(float(s.mean()), 3) for s in spikes[name]],
          f"| accuracy on these {len(labels)} images {batch_acc[name]:.3f}")
""",
    ),
    (
        "code",
        r"""
n_layers = len(spikes["htaf"])
fig, axes = plt.subplots(1, 3, figsize=(17, 4.2))
for name in SURROGATES:
    for i, s in enumerate(spikes[name]):
        style = ["-", ":", "-.", "--"][i % 4]
        axes[0].plot(np.arange(1, s.shape[0] + 1), s.mean(axis=(1, 2)), style, marker="o", ms=3,
                     color=COLORS[name], label=f"{name} layer {i}")
        per_neuron = s.mean(axis=(0, 1))
        axes[1].hist(per_neuron, bins=np.linspace(0, 1, 21), histtype="step", ls=style,
                     color=COLORS[name], lw=1.4,
                     label=f"{name} layer {i} ({100 * np.mean(per_neuron == 0):.0f}% silent)")
axes[0].set(title="spike rate over the time steps (test batch)", xlabel="time step t",
            ylabel="spikes per neuron")
axes[1].set(title="per-neuron spike rate (test batch)", xlabel="spike rate",
            ylabel="neurons")
raster = spikes["htaf"][0][:, 0, :]  # (T, N): layer 0, first test image
t_idx, n_idx = np.nonzero(raster)
axes[2].scatter(n_idx, t_idx + 1, s=2, color="k")
axes[2].set(title=f"htaf, layer 0, one test image: {raster.mean():.0%} of (t, neuron) spike",
            xlabel="neuron", ylabel="time step t", ylim=(0.5, raster.shape[0] + 0.5))
for ax in axes[:2]:
    ax.legend(fontsize=8)
fig.tight_layout()
savefig(fig, "02_spike_rates")
plt.show()
""",
    ),
    (
        "md",
        r"""
## 4. Summary

Same network, data, seed and budget; only the surrogate gradient differs. One seed on a
small budget is a sketch, not a result: the sweep below runs several seeds and every
surrogate in the registry.
""",
    ),
    (
        "code",
        r"""
header = ["surrogate", "test accuracy", "test loss", "final train loss"] + \
    [f"spike rate layer {i}" for i in range(n_layers)] + ["train time (s)"]
rows = []
for name in SURROGATES:
    last_train = [r for r in records[name] if r["split"] == "train"][-1]
    m = results[name].metrics
    rows.append([name, f"{m['test/accuracy']:.4f}", f"{m['test/loss']:.4f}",
                 f"{last_train['loss']:.4f}"]
                + [f"{s.mean():.3f}" for s in spikes[name]] + [f"{seconds[name]:.0f}"])
print("| " + " | ".join(header) + " |")
print("|" + "---|" * len(header))
for row in rows:
    print("| " + " | ".join(row) + " |")
""",
    ),
    (
        "md",
        r"""
More:

* the same run from the command line:
  `python -m experiments.train --config experiments/configs/snn_mlp.py --workdir workdirs/snn_mlp
  --config.model.surrogate=atan`;
* HTAF against every surrogate in the registry, 3 seeds, mean ± std:
  `python -m experiments.run snn_mlp` (`--profile quick` for a reduced budget).
""",
    ),
]
