"""03_icbm_explore.ipynb: train an Implicit Concept Bottleneck Model, then read it."""

from cells.common import DATA_CHECK, DATA_MD, INSTALL, setup

CELLS = [
    (
        "md",
        r"""
# Train an Implicit Concept Bottleneck Model, then explore it

An ICBM puts a layer of ~binary "implicit concepts" between a backbone and a linear head:

$$h = \mathrm{backbone}(x),\qquad z = \mathrm{htaf}\big(\mathrm{BN}(W h)\big) \in (0,1)^K,\qquad
\mathrm{logits} = z V + b .$$

It trains with the smooth HTAF and predicts with **hard** concepts $z \in \{0,1\}^K$, so every
prediction is a sum: the logit of class $c$ is $b_c + \sum_{k:\,z_k=1} V_{kc}$. Nothing
else enters, which is what makes the model readable.

This notebook trains the ICBM of `experiments/configs/icbm.py` (MLP backbone, K = 128
concepts, HTAF α = 16, β = 1, noise of std 0.5 on the concept pre-activations and the unit
sharpened from ×1 to ×16 during training) with the library's trainer, then shows

1. how binary the concepts really are (and the hard-vs-soft accuracy gap);
2. concept grids: the test images that switch each concept on most and least;
3. the class-by-concept weight matrix $V$ as a heatmap;
4. one test example's prediction, explained concept by concept;
5. an intervention: setting one concept by hand changes the prediction.

`SMALL=1` is a smoke run: 2,000 images for 2 epochs, 1,000 test images (well under a
minute on 2 CPU cores); without it the full config runs (60k images, 16 epochs). After training,
the notebook prints what the `icbm_layers` study measured for this config at its full budget
(read from its results file), to compare with.
""",
    ),
    INSTALL,
    setup(
        extra_imports="""
import json

from htaf_jax import interpret
from htaf_jax.data import class_names
from htaf_jax.train import load_config, model_from_run, train_and_evaluate
from htaf_jax.train.metrics import read_metrics
from experiments.configs import icbm as icbm_configs
"""
    ),
    DATA_MD,
    DATA_CHECK,
    (
        "md",
        r"""
## Train

`train_and_evaluate(config, workdir)` is the trainer every experiment uses. It writes
`metrics.jsonl`, checkpoints and `summary.json` to the work dir and **resumes** from the
latest checkpoint there, so running this cell again after a finished run only re-evaluates.
Delete the work dir to start over.
""",
    ),
    (
        "code",
        r"""
config = icbm_configs.get_config()
config.tensorboard = False
if SMALL:
    config.train_subset = 2000
    config.test_subset = 1000
    config.num_epochs = 2
    config.log_every_steps = 5
WORKDIR = "workdirs/icbm_small" if SMALL else "workdirs/icbm"
print(f"model: {dict(config.model)}")
print(f"train on {config.train_subset if config.train_subset > 0 else 'all'} images, "
      f"{config.num_epochs} epochs, batch {config.batch_size}; work dir {WORKDIR}")

result = train_and_evaluate(config, WORKDIR)
print("final:", {k: round(v, 4) for k, v in result.metrics.items()})

# This config at its full budget, as the icbm_layers study measured it (its "dense-htaf" row).
stored = pathlib.Path(root) / "results" / "full" / "icbm_layers" / "icbm_layers.json"
if stored.exists():
    table = json.load(open(stored))
    row = next(r for r in table["rows"] if r["label"] == "dense-htaf")
    print(f"{stored.relative_to(root)} (full budget, seeds {row['seeds']}, {table['machine']}): "
          f"hard-concept test accuracy {row['hard_accuracy']['text']} %, "
          f"training {row['seconds']['text']} s")
""",
    ),
    (
        "code",
        r"""
records = read_metrics(WORKDIR)
train = [r for r in records if r["split"] == "train"]
test = [r for r in records if r["split"] == "test"]
steps = [r["step"] for r in train]

fig, axes = plt.subplots(1, 3, figsize=(16, 4))
axes[0].plot(steps, [r["loss"] for r in train], label="train (smooth concepts)")
axes[0].plot([r["step"] for r in test], [r["loss"] for r in test], "o-", label="test (hard concepts)")
axes[0].set(title="loss", xlabel="step", ylabel="cross-entropy")
axes[1].plot(steps, [r["accuracy"] for r in train], label="train (smooth concepts)")
axes[1].plot([r["step"] for r in test], [r["accuracy"] for r in test], "o-", label="test (hard concepts)")
axes[1].set(title="accuracy", xlabel="step", ylabel="accuracy")
axes[2].plot(steps, [r["concept_layer/near_binary"] for r in train], label="share of concepts within 0.01 of {0,1}")
axes[2].plot(steps, [r["concept_layer/concept_rate"] for r in train], label="mean concept (share on)")
axes[2].set(title="concept layer during training", xlabel="step", ylabel="share", ylim=(0, 1.02))
for ax in axes:
    ax.legend(fontsize=8)
fig.tight_layout()
savefig(fig, "03_training")
plt.show()
""",
    ),
    (
        "md",
        r"""
## Load the trained model and the test set

`load_config(workdir)` gives the config the run used, `model_from_run(workdir)` the Flax
module rebuilt from it (with the number of classes the run found), and `result` holds the trained parameters and BatchNorm
statistics. The test images are normalised the way the trainer normalised them.
""",
    ),
    (
        "code",
        r"""
config = load_config(WORKDIR)
model, _ = model_from_run(WORKDIR)  # (module, derived values)
variables = {"params": result.params, "batch_stats": result.batch_stats}

splits = data_lib.load_splits(config.dataset, config.get("data_dir"),
                              train_subset=config.train_subset, test_subset=config.test_subset)
images = splits.normalizer(splits.eval.images)  # what the model sees
pictures = splits.eval.images[..., 0]            # what we look at (uint8)
labels = splits.eval.labels
names = class_names(config.dataset)
kernel, bias = interpret.head_weights(variables)  # V (K, C), b (C,)
K = kernel.shape[0]
print(f"{len(labels)} test images, K = {K} concepts, classes: {', '.join(names)}")
""",
    ),
    (
        "md",
        r"""
## 1. How binary are the concepts?

`concept_activations` runs the model's `explain` method over the test set: pre-activations
BN(Wh), hard concepts, soft (smooth HTAF) concepts, and the logits from each.
`discretisation` summarises them.
""",
    ),
    (
        "code",
        r"""
acts = interpret.concept_activations(model, variables, images)
stats = interpret.discretisation(acts, labels, eps=(0.01, 0.1))
for key, value in stats.items():  # hard_soft_gap: soft minus hard accuracy, in % points
    print(f"{key:20s} {value:.4f}" if isinstance(value, float) else f"{key:20s} {value}")

fig, axes = plt.subplots(1, 2, figsize=(13, 3.8))
axes[0].hist(acts.preactivations.ravel(), bins=120, color="tab:blue")
axes[0].axvline(0, color="k", lw=0.8)
axes[0].set(title="concept pre-activations BN(Wh) on the test set (on ⇔ ≥ 0)", yscale="log")
axes[1].hist(acts.soft.ravel(), bins=100, color="tab:orange")
axes[1].set(title="soft concepts htaf(BN(Wh))", yscale="log", xlabel="z")
fig.tight_layout()
savefig(fig, "03_concept_histograms")
plt.show()
""",
    ),
    (
        "md",
        r"""
## 2. Concept grids

A concept has no name; what it means is read off the images that switch it on. For the
concepts the head weighs most (one per class first), the rows below show the test images with
the largest pre-activation ("most on") and, beside them, the smallest ("most off").
""",
    ),
    (
        "code",
        r"""
def chosen_concepts(kernel, count):
    chosen = []
    for top in interpret.class_concepts(kernel, top=1):  # each class's strongest concept
        if top[0][0] not in chosen:
            chosen.append(top[0][0])
    for k in np.argsort(-kernel.max(axis=1)):
        if len(chosen) < count and int(k) not in chosen:
            chosen.append(int(k))
    return chosen[:count]


shown = chosen_concepts(kernel, 6 if SMALL else 10)
n = 8
fig, axes = plt.subplots(len(shown), 2 * n + 1, figsize=(2 * n * 0.75 + 2, len(shown) * 0.9))
for r, k in enumerate(shown):
    on = interpret.ranked_examples(acts.preactivations, k, n)
    off = interpret.ranked_examples(acts.preactivations, k, n, least=True)
    for ax, i in zip(list(axes[r, :n]) + list(axes[r, n + 1:]), list(on) + list(off)):
        ax.imshow(pictures[i], cmap="gray_r")
    for ax in axes[r]:
        ax.set_xticks([]); ax.set_yticks([])
    axes[r, n].axis("off")
    share = 100 * acts.hard[:, k].mean()
    axes[r, 0].set_ylabel(f"c{k}\n→ {names[int(np.argmax(kernel[k]))]}\non {share:.0f}%",
                          rotation=0, ha="right", va="center", fontsize=8)
axes[0, n // 2].set_title("most on", fontsize=9)
axes[0, n + 1 + n // 2].set_title("most off", fontsize=9)
fig.subplots_adjust(wspace=0.05, hspace=0.1)
savefig(fig, "03_concept_grids")
plt.show()
""",
    ),
    (
        "md",
        r"""
The label on the left is the class whose logit that concept raises most. The library also
writes one PNG per concept (`interpret.save_concept_grid`, used by `python -m experiments.icbm`)
with each tile's class and pre-activation.

## 3. Which concepts vote for which class

The head's kernel $V$ (concepts × classes) is the whole decision rule. Concepts are sorted by
the class they support most.
""",
    ),
    (
        "code",
        r"""
order = np.lexsort((-kernel.max(axis=1), kernel.argmax(axis=1)))
lim = np.abs(kernel).max()
fig, ax = plt.subplots(figsize=(8, max(5, 0.24 * K)))
im = ax.imshow(kernel[order], cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
ax.set_yticks(range(K), [f"c{k} ({100 * acts.hard[:, k].mean():.0f}% on)" for k in order], fontsize=7)
ax.set_title("head weights V[k, c]: what an active concept adds to each class's logit")
fig.colorbar(im, ax=ax, shrink=0.6)
savefig(fig, "03_class_concept_weights")
plt.show()

for c, top in enumerate(interpret.class_concepts(kernel, top=3)):
    print(f"{names[c]:12s}", "  ".join(f"c{k} {w:+.2f}" for k, w in top))
""",
    ),
    (
        "md",
        r"""
## 4. One prediction, explained

Take a test image. Its logit for each class is the bias plus the weights of its active
concepts; `interpret.concept_contributions` gives those terms and `interpret.explain_text`
writes them out, with the single concept flip that would most reduce the winning margin.
""",
    ),
    (
        "code",
        r"""
i = 0
z = acts.hard[i]
pred = int(acts.logits[i].argmax())
runner = int(np.argsort(-acts.logits[i])[1])
contrib = interpret.concept_contributions(z, kernel)  # (K, C)
assert np.allclose(contrib.sum(0) + bias, acts.logits[i], atol=1e-4)

print(interpret.explain_text(z, kernel, bias, label=int(labels[i]), class_names=names,
                             max_listed=8))

active = np.flatnonzero(z > 0.5)
fig, axes = plt.subplots(1, 3, figsize=(16, 3.8), gridspec_kw={"width_ratios": [1, 3, 3]})
axes[0].imshow(pictures[i], cmap="gray_r")
axes[0].set(title=f"true: {names[labels[i]]}\npredicted: {names[pred]}", xticks=[], yticks=[])
for ax, c in zip(axes[1:], [pred, runner]):
    terms = contrib[active, c]
    ax.bar(range(len(active)), terms, color=np.where(terms > 0, "tab:green", "tab:red"))
    ax.set_xticks(range(len(active)), [f"c{k}" for k in active], rotation=90, fontsize=7)
    ax.set(title=f"{names[c]}: logit {acts.logits[i, c]:.2f} = bias {bias[c]:.2f} "
                 f"+ Σ active concepts")
    ax.axhline(0, color="k", lw=0.6)
fig.tight_layout()
savefig(fig, "03_explanation")
plt.show()
""",
    ),
    (
        "md",
        r"""
## 5. An intervention that changes a prediction

In a concept bottleneck a person can overrule a concept and the head's answer follows
exactly: setting concept $k$ to $v$ moves logit $c$ by $(v - z_k) V_{kc}$. We look for a
misclassified test image where flipping a single concept makes the prediction correct
(falling back to any single flip that changes a prediction), then apply it with
`interpret.intervene`, which re-runs the model's head on the edited concepts.
""",
    ),
    (
        "code",
        r"""
def single_flip_effects(z, logits):
    # new logits for each of the K single-concept flips: (K, C)
    return logits[None, :] + (1.0 - 2.0 * z)[:, None] * kernel


correction = fallback = None
for j in range(len(labels)):
    flipped = single_flip_effects(acts.hard[j], acts.logits[j]).argmax(-1)  # (K,)
    pred_j = acts.logits[j].argmax()
    if pred_j != labels[j] and np.any(flipped == labels[j]):
        correction = (j, int(np.flatnonzero(flipped == labels[j])[0]))
        break
    if fallback is None and np.any(flipped != pred_j):
        fallback = (j, int(np.flatnonzero(flipped != pred_j)[0]))
assert correction or fallback, "no single concept flip changes any test prediction"
j, k = correction or fallback
value = 1.0 - acts.hard[j, k]
out = interpret.intervene(model, variables, images[j:j + 1], concept=k, value=value)
before, after = int(out.prediction_before[0]), int(out.prediction_after[0])
print(f"test image {j}: true {names[labels[j]]}, predicted {names[before]}")
print(f"set concept c{k} {'on' if value else 'off'} (it was {'on' if value == 0 else 'off'}): "
      f"prediction → {names[after]}" + (" (now correct)" if after == labels[j] else ""))
assert after != before

fig = plt.figure(figsize=(16, 4.2))
grid = fig.add_gridspec(2, 10, width_ratios=[2.2, 0.3] + [1] * 8, height_ratios=[1, 1])
ax = fig.add_subplot(grid[:, 0])
ax.imshow(pictures[j], cmap="gray_r")
ax.set(title=f"true {names[labels[j]]}", xticks=[], yticks=[])
ax = fig.add_subplot(grid[0, 2:])
x = np.arange(len(names))
ax.bar(x - 0.2, out.logits_before[0], 0.4, label=f"before: {names[before]}")
ax.bar(x + 0.2, out.logits_after[0], 0.4, label=f"c{k} {'on' if value else 'off'}: {names[after]}")
ax.set_xticks(x, names, fontsize=8)
ax.set(title="logits before and after the intervention", ylabel="logit")
ax.legend(fontsize=8)
for col, idx in enumerate(interpret.ranked_examples(acts.preactivations, k, 8)):
    a = fig.add_subplot(grid[1, 2 + col])
    a.imshow(pictures[idx], cmap="gray_r")
    a.set_xticks([]); a.set_yticks([])
    if col == 0:
        a.set_ylabel(f"c{k} most on", fontsize=8)
fig.tight_layout()
savefig(fig, "03_intervention")
plt.show()
""",
    ),
    (
        "md",
        r"""
## 6. A handful of concepts per class (NEC), and interventions

A person reads an explanation of a few concepts, not dozens. The concept-bottleneck field
(VLG-CBM) compares models at a fixed *number of effective concepts per class* (NEC): cut the
head to the NEC largest weights of each class and refit those on the training images with the
concepts frozen. Which weights to keep is read off the trained head or off that head after an
L1 path on the frozen concepts (`interpret.choose_sparse_head` picks the path's λ and the
refit's rate on a held-out sixth of the training images). At NEC = 5 each prediction is a sum of at most 50 concepts' weights, and a median
explanation needs only a few of them. Then interventions: for the mispredicted test images,
set concepts one at a time to the true class's typical value (its on-rate on the training
images), in random order and in an informed order (largest margin gain first).
`python -m experiments.run icbm_nec` measures all of it over concept layers, backbones and
seeds, beside the standard model and a random code.
""",
    ),
    (
        "code",
        r"""
NEC = 5
train_z = interpret.concept_activations(
    model, variables, splits.normalizer(splits.train.images)).hard
train_y = np.asarray(splits.train.labels)
cut = len(train_y) * 5 // 6
choice = interpret.choose_sparse_head(train_z[:cut], train_y[:cut], train_z[cut:],
                                      train_y[cut:], kernel, bias, NEC)
sparse = choice.head
print(f"test accuracy: own head {100 * np.mean(acts.logits.argmax(-1) == labels):.2f}%, "
      f"NEC={NEC} head {100 * interpret.head_accuracy(sparse, acts.hard, labels):.2f}% "
      f"({np.count_nonzero(sparse.kernel)} weights; L1 path λ {choice.l1:g}, "
      f"refit rate {choice.learning_rate:g})")
size = interpret.explanation_size(acts.hard, sparse.kernel, sparse.bias)
cover = interpret.margin_coverage(acts.hard, sparse.kernel, sparse.bias, 5)
print(f"explanation at NEC={NEC}: median {np.median(size):.0f} concepts for 90% of the margin; "
      f"the 5 largest terms keep a median {100 * np.median(cover):.0f}% of it")
print(interpret.explain_text(acts.hard[i], sparse.kernel, sparse.bias, label=int(labels[i]),
                             class_names=names, max_listed=5,
                             concept_names=interpret.concept_labels(acts.hard, labels, names)))

from IPython.display import Image, display
overview = os.path.join(WORKDIR, f"nec{NEC}_classes.png")
shown = images * 0.5 + 0.5 if images.min() < 0 else images
interpret.save_class_overview(overview, shown, acts.preactivations, sparse.kernel,
                              sparse.mask, labels, names)
display(Image(overview))  # each class's NEC concepts, largest weight first
""",
    ),
    (
        "code",
        r"""
rates = np.stack([train_z[train_y == c].mean(0) for c in range(len(names))])  # typical codes
wrong = sparse.logits(acts.hard).argmax(-1) != labels
fig, ax = plt.subplots(figsize=(6, 3.8))
for order, style in (("informed", "-"), ("random", "--")):
    curve = interpret.intervention_curve(acts.hard[wrong], labels[wrong], sparse.kernel,
                                         sparse.bias, rates, 10, order)
    ax.plot(100 * curve.accuracy, style, marker="o", label=order)
ax.set(xlabel="concepts intervened", ylabel="mispredicted test images now right %",
       title=f"interventions, NEC={NEC} head ({wrong.sum()} images)")
ax.legend()
fig.tight_layout()
savefig(fig, "03_interventions")
plt.show()
""",
    ),
    (
        "md",
        r"""
More: `python -m experiments.icbm --workdir workdirs/icbm` trains the full model together with
a standard-head baseline on the same budget and writes `results.md` with the accuracy gap and
the discretisation targets; `python -m experiments.icbm_explain --workdir workdirs/icbm
--index 7 --flip 3` explains and edits any test example from the command line, and with
`--nec 5 --figures` reads it with the NEC = 5 head and draws its deciding concepts.
""",
    ),
]
