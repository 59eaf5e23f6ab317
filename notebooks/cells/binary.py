"""04_binary_and_heaviside.ipynb: a DHN depth study (plain/skip/mixed), a BNN packed into bits."""

from cells.common import DATA_CHECK, DATA_MD, INSTALL, setup

CELLS = [
    (
        "md",
        r"""
# Binary units with HTAF: deep Heaviside networks and a bit-packed binary network

Two kinds of network whose units are exactly binary once trained, both trained here with
HTAF as the surrogate gradient of the step:

* a **deep Heaviside network** (DHN, `htaf_jax.models.HeavisideMLP`): every hidden unit is
  $H(z) \in \{0, 1\}$ of a batch-normalised pre-activation. Kong, Chen, Langer and
  Schmidt-Hieber (*On the expressivity of deep Heaviside networks*, arXiv 2505.00110) show
  plain DHNs are limited in what they can express and that skip connections, or a few
  linear units per layer, fix that. Part 1 trains the three variants at two depths;
* a **binary network** (BNN, `htaf_jax.models.BinaryMLP`): ±1 weights (times one scale per
  output unit, as in XNOR-Net) and ±1 activations. Part 2 trains one, packs its weights into
  bits with `htaf_jax.models.bnn_export` and checks the packed model predicts exactly as the
  trained one, at about 1/32 of the memory.

`SMALL=1` is a smoke run: 2,000 images for 2 epochs (64 units a DHN layer, depths 2 and 4; a
128-128 BNN), well under a minute for the whole notebook on 2 CPU cores. Without it the configs'
widths on all 60,000 images, DHN depths 2, 4, 8 and 16 for 3 epochs each, the BNN for its
config's epochs.
""",
    ),
    INSTALL,
    setup(
        extra_imports="""
import time

import optax
from htaf_jax.models import build_model
from htaf_jax.models import bnn_export
from htaf_jax.train import train_and_evaluate
from htaf_jax.train.metrics import read_metrics
from experiments.configs import bnn_mlp, dhn_mlp
"""
    ),
    DATA_MD,
    DATA_CHECK,
    (
        "md",
        r"""
## 1. Deep Heaviside networks: plain, skip and mixed, shallow and deep

Layer $l$ computes $h_l = H(\mathrm{BN}(W_l h_{l-1}))$ (**plain**);
$h_l = H(\mathrm{BN}(W_l h_{l-1} + V_l x))$, every layer also reading the input $x$
(**skip**); or a quarter of each layer's units linear, the rest Heaviside (**mixed**). They
train in `mode="hard"`: the forward pass is the true step, the backward pass HTAF's
derivative; evaluation always uses true Heaviside units. Only `variant` and `depth` change
between runs.
""",
    ),
    (
        "code",
        r"""
VARIANTS = ["plain", "skip", "mixed"]
DEPTHS = [2, 4] if SMALL else [2, 4, 8, 16]


def dhn_config(variant, depth):
    config = dhn_mlp.get_config()
    config.tensorboard = False
    config.model.variant = variant
    config.model.depth = depth
    if SMALL:
        config.model.width = 64
        config.train_subset = 2000
        config.test_subset = 1000
        config.num_epochs = 2
        config.log_every_steps = 5
    else:
        config.num_epochs = 3
    return config


print("model:", dict(dhn_config("plain", DEPTHS[0]).model))
dhn = {}
for depth in DEPTHS:
    for variant in VARIANTS:
        workdir = f"workdirs/dhn_{variant}_d{depth}" + ("_small" if SMALL else "")
        start = time.time()
        result = train_and_evaluate(dhn_config(variant, depth), workdir)
        dhn[variant, depth] = dict(result=result, workdir=workdir, seconds=time.time() - start)
        print(f"depth {depth:2d} {variant:5s} test accuracy {result.metrics['test/accuracy']:.4f} "
              f"({dhn[variant, depth]['seconds']:.0f} s)")
""",
    ),
    (
        "md",
        r"""
Below, left: test accuracy against depth. Middle: the training loss of the deepest networks.
Right: how much gradient reaches each layer of those deepest networks, $\|\partial L / \partial W_l\|$
for layer $l$'s weights (cross-entropy on 1,000 training images, training-mode forward), at
initialisation (dashed) and after training (solid). It tests one explanation of the plain
network's drop with depth: if its gradient vanished on the way down through the surrogate
derivatives, its first layers would get far less gradient than its last ones, and far less
than the skip and mixed networks' first layers. (With a BatchNorm before every step, it need
not; the paper's explanation is what the layers can express, not how they train.)
""",
    ),
    (
        "code",
        r"""
# The trainer's splits (both parts use the same subsets): the normaliser is fitted on the
# training images, as in training.
config = dhn_config("plain", DEPTHS[0])
splits = data_lib.load_splits(config.dataset, config.get("data_dir"),
                              train_subset=config.train_subset, test_subset=config.test_subset)
test_images = splits.normalizer(splits.eval.images)
labels = splits.eval.labels
deepest = DEPTHS[-1]


grad_images = jnp.asarray(splits.normalizer(splits.train.images[:1000]))
grad_labels = jnp.asarray(splits.train.labels[:1000])


def layer_grad_norms(variant, depth, trained):
    # ||dL/dW_l|| for each hidden layer l, with the trained or freshly initialised variables
    model = build_model(dhn_config(variant, depth).model)
    if trained:
        result = dhn[variant, depth]["result"]
        variables = {"params": result.params, "batch_stats": result.batch_stats}
    else:
        variables = model.init(jax.random.key(0), grad_images[:2], train=False)

    def loss(params):
        logits, _ = model.apply({**variables, "params": params}, grad_images, train=True,
                                mutable=["batch_stats", "intermediates"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, grad_labels).mean()

    grads = jax.jit(jax.grad(loss))(variables["params"])
    return [float(jnp.linalg.norm(grads[f"layer{l}"]["kernel"])) for l in range(depth)]


COLORS = {"plain": "tab:red", "skip": "tab:blue", "mixed": "tab:green"}
fig, axes = plt.subplots(1, 3, figsize=(17, 4.2))
for variant in VARIANTS:
    c = COLORS[variant]
    axes[0].plot(DEPTHS, [dhn[variant, d]["result"].metrics["test/accuracy"] for d in DEPTHS],
                 "o-", color=c, label=variant)
    train = [r for r in read_metrics(dhn[variant, deepest]["workdir"]) if r["split"] == "train"]
    axes[1].plot([r["step"] for r in train], [r["loss"] for r in train], color=c, label=variant)
    for trained, style in [(False, "--"), (True, "-")]:
        norms = layer_grad_norms(variant, deepest, trained)
        axes[2].semilogy(range(deepest), norms, style, marker="o", ms=3, color=c,
                         label=f"{variant}, {'trained' if trained else 'at init'}")
        print(f"{variant:5s} depth {deepest} {'trained' if trained else 'at init'}: "
              "||dL/dW_l|| =", " ".join(f"{g:.1e}" for g in norms))
axes[0].set_xscale("log", base=2)
axes[0].minorticks_off()
axes[0].set(title="test accuracy (Heaviside units)", xlabel="depth (hidden layers)",
            ylabel="accuracy", xticks=DEPTHS, xticklabels=[str(d) for d in DEPTHS])
axes[1].set(title=f"training loss, depth {deepest}", xlabel="step", ylabel="cross-entropy")
axes[2].set(title=f"gradient reaching each layer, depth {deepest}", xlabel="layer l",
            ylabel="||dL/dW_l||")
for ax in axes:
    ax.legend(fontsize=8)
fig.tight_layout()
savefig(fig, "04_dhn_depth")
plt.show()
""",
    ),
    (
        "md",
        r"""
With one seed and a small budget the numbers are noisy; the sweep at the end runs several
seeds, more depths and every surrogate, and records per-layer gradient norms.

## 2. A binary network, packed into bits

Every weight of `BinaryMLP` is used as $\mathrm{sign}(W)\cdot a$, with one float scale
$a = \mathrm{mean}|W|$ per output unit, so after training each weight needs one bit.
`pack_binary_params` stores the signs as packed `uint8` words plus the scales;
`unpack_params` rebuilds kernels $\pm a$ that give the same forward pass.
""",
    ),
    (
        "code",
        r"""
config = bnn_mlp.get_config()
config.tensorboard = False
if SMALL:
    config.model.hidden = (128, 128)
    config.train_subset = 2000
    config.test_subset = 1000
    config.num_epochs = 2
    config.log_every_steps = 5
print("model:", dict(config.model))
bnn_workdir = "workdirs/bnn_mlp" + ("_small" if SMALL else "")
bnn = train_and_evaluate(config, bnn_workdir)
print(f"test accuracy {bnn.metrics['test/accuracy']:.4f}")
""",
    ),
    (
        "code",
        r"""
model = build_model(config.model)
packed = bnn_export.pack_binary_params(bnn.params)
report = bnn_export.packed_memory_report(bnn.params, packed)
unpacked = bnn_export.unpack_params(bnn.params, packed)

# The packed model is the trained model: same predictions on the test images.
assert (config.train_subset, config.test_subset) == (dhn_config("plain", 2).train_subset,
                                                     dhn_config("plain", 2).test_subset)
logits = {}
for name, params in [("trained", bnn.params), ("from bits", unpacked)]:
    logits[name] = np.asarray(model.apply({"params": params, "batch_stats": bnn.batch_stats},
                                          test_images, train=False))
    print(f"{name:10s} accuracy on {len(labels)} test images "
          f"{np.mean(logits[name].argmax(-1) == labels):.4f}")
assert np.array_equal(logits["trained"].argmax(-1), logits["from bits"].argmax(-1))
print("max |logit difference|:", float(np.abs(logits["trained"] - logits["from bits"]).max()))

print(f"\n{'layer':24s} {'shape':>12s} {'float32':>10s} {'bits':>9s} {'scales':>8s}")
for path, pk in packed.items():
    print(f"{'/'.join(path):24s} {str(pk.shape):>12s} {4 * np.prod(pk.shape):>10,d} "
          f"{pk.bits.nbytes:>9,d} {pk.scale.nbytes:>8,d}")
print(f"binary kernels: {report['float32_bytes']:,d} bytes as float32 → "
      f"{report['packed_bytes'] + report['scale_bytes']:,d} bytes packed with scales "
      f"({report['ratio_with_scales']:.1f}× smaller; {report['ratio']:.0f}× for the bits alone)")
""",
    ),
    (
        "code",
        r"""
names = ["/".join(p[:-1]) for p in packed]
x = np.arange(len(names))
fig, ax = plt.subplots(figsize=(8, 4.2))
ax.bar(x - 0.2, [4 * np.prod(pk.shape) for pk in packed.values()], 0.4, label="float32 weights")
ax.bar(x + 0.2, [pk.bits.nbytes + pk.scale.nbytes for pk in packed.values()], 0.4,
       label="packed bits + float32 scales")
ax.set(title=f"memory of each binary kernel ({report['ratio_with_scales']:.1f}× smaller packed)",
       ylabel="bytes", yscale="log")
ax.set_xticks(x, [f"{n}\n{pk.shape}" for n, pk in zip(names, packed.values())])
ax.legend(fontsize=8)
fig.tight_layout()
savefig(fig, "04_bnn_export")
plt.show()
""",
    ),
    (
        "md",
        r"""
More:

* the depth study with every surrogate and 3 seeds, accuracy and per-layer gradient norms:
  `python -m experiments.run dhn_depths` (`--dry-run` lists its runs);
* one DHN or BNN from the command line: `python -m experiments.train --config
  experiments/configs/dhn_mlp.py --workdir workdirs/dhn_mlp --config.model.variant=skip
  --config.model.depth=8`, `python -m experiments.train --config experiments/configs/bnn_mlp.py
  --workdir workdirs/bnn_mlp`.
""",
    ),
]
