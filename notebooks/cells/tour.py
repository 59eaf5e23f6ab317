"""01_htaf_tour.ipynb: HTAF, its surrogate peers, α and β, the float32 tail, hard vs smooth."""

from cells.common import INSTALL, setup

CELLS = [
    (
        "md",
        r"""
# A tour of HTAF, the Heavy-Tailed Activation Function

HTAF is a smooth stand-in for the Heaviside step $H(x)$:

$$\mathrm{htaf}(x;\alpha,\beta) = \sigma\big(\alpha \tanh(\beta x)\big),\qquad
\mathrm{htaf}'(x) = \alpha\beta\,\sigma(u)\,\sigma(-u)\,\mathrm{sech}^2(\beta x),\quad u = \alpha\tanh(\beta x).$$

(Park, Kim, Lee, Park, Kong, Kim, *A Composite Activation Function for Learning Stable
Binary Representations*, arXiv 2605.11558, 2026. `htaf_jax` implements the literal
sigmoid∘tanh composite the abstract describes.)

This notebook shows
1. the function and its derivative next to the surrogate gradients other libraries ship;
2. what α and β do;
3. why `htaf_jax.htaf` has a custom VJP: in float32, plain autodiff of the composite loses the
   tail of the gradient, the custom rule keeps it (log-scale plot);
4. the hard (straight-through) and smooth forms, on a small network of Heaviside units.

Runs in seconds on a CPU; `SMALL=1` only shortens the toy training at the end.
""",
    ),
    INSTALL,
    setup(extra_imports="import optax"),
    (
        "md",
        r"""
## 1. HTAF next to the registry's surrogates

Every binary unit in `htaf_jax` takes its surrogate from one registry, so a model's
`surrogate="htaf"` can be swapped for `"atan"`, `"sigmoid"`, … Each entry has a closed-form
derivative `s.grad` and, where one exists, a smooth forward `s.smooth` whose derivative is
exactly `s.grad` (the straight-through entries have none). Defaults are the peers'
(snnTorch, SpikingJelly, Norse, Larq), cited in each entry.
""",
    ),
    (
        "code",
        r"""
for name in [n for n in H.list_units() if isinstance(H.get_unit(n), H.StepUnit)]:
    s = H.get_unit(name)
    print(f"{name:17s} {str(s.kwargs):32s} peak grad {float(s.grad(0.0)):6.3f}   "
          f"{s.spec.citation.split(':')[0]}")
""",
    ),
    (
        "code",
        r"""
x = jnp.linspace(-4, 4, 1601)
names = [n for n in H.list_units() if n != "htaf" and isinstance(H.get_unit(n), H.StepUnit)]
colors = dict(zip(names, plt.cm.tab10(np.linspace(0, 1, len(names)))))

fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
for name in names:
    s = H.get_unit(name)
    kw = dict(color=colors[name], lw=1.2, alpha=0.8, label=name)
    if s.has_smooth:
        axes[0].plot(x, s.smooth(x), **kw)
    axes[1].plot(x, s.grad(x), **kw)
    axes[2].semilogy(x, np.maximum(np.asarray(s.grad(x)), 1e-12), **kw)
htaf = H.get_unit("htaf")
for ax, f in zip(axes, [htaf.smooth, htaf.grad, htaf.grad]):
    ax.plot(x, f(x), color="k", lw=2.6, label="htaf (α=4, β=1)")
axes[0].step(x, htaf(x), color="grey", ls=":", where="post", label="Heaviside")
axes[0].set(title="smooth forward (where defined)", xlabel="x", ylabel="s(x)", ylim=(-0.15, 1.15))
axes[1].set(title="surrogate derivative", xlabel="x", ylabel="s'(x)", ylim=(0, 1.6))
axes[2].set(title="surrogate derivative, log scale (the tails)", xlabel="x", ylabel="s'(x)", ylim=(1e-7, 3))
axes[0].legend(fontsize=7, ncol=2)
fig.tight_layout()
savefig(fig, "01_surrogates")
plt.show()
""",
    ),
    (
        "md",
        r"""
The log-scale panel is where the surrogates differ most: the boxcar, triangle and clipped
straight-through rules give **no** gradient outside a window; sigmoid and erf decay fast
(e^(−α|x|), e^(−α²x²)); HTAF decays like e^(−2β|x|). (fast-sigmoid's smooth forward, the
exact antiderivative of its rule, only spans ½ ± 1/slope.) The rational rules (atan,
fast-sigmoid) have polynomial tails, heavier still, but a much smaller mass near 0
relative to their peak for the same width.

The precise claim about HTAF's tail is against a sigmoid with the **same peak slope**
(σ(kx), k = αβ): HTAF's derivative falls like e^(−2β|x|) whatever α is, the sigmoid's like
e^(−αβ|x|); for α > 2 HTAF's tail is the heavier one.
""",
    ),
    (
        "code",
        r"""
x = jnp.linspace(0, 12, 600)
fig, ax = plt.subplots(figsize=(7, 4.2))
for alpha, c in [(2.0, "tab:blue"), (4.0, "tab:orange"), (8.0, "tab:green")]:
    k = alpha * 1.0
    ax.semilogy(x, H.htaf_grad(x, alpha, 1.0), color=c, lw=2, label=f"htaf α={alpha:g}, β=1")
    ax.semilogy(x, H.get_unit("sigmoid", alpha=k).grad(x), color=c, ls="--",
                label=f"sigmoid k=αβ={k:g} (same peak)")
ax.set(xlabel="x", ylabel="derivative", ylim=(1e-20, 5),
       title="same peak slope: HTAF's tail vs a sigmoid's")
ax.legend(fontsize=8)
savefig(fig, "01_tail_vs_sigmoid")
plt.show()
""",
    ),
    (
        "md",
        r"""
## 2. The effect of α and β

* α sets how much of the gradient sits near 0 and how close the outputs come to {0, 1}:
  the peak slope is αβ/4 and the rails are σ(±α).
* β sets the width and the tail: far from 0 the derivative decays like e^(−2β|x|).
""",
    ),
    (
        "code",
        r"""
x = jnp.linspace(-5, 5, 1001)
alphas = [1.0, 2.0, 4.0, 8.0, 16.0]
betas = [0.5, 1.0, 2.0, 4.0]
fig, axes = plt.subplots(2, 2, figsize=(12, 8))
for a, c in zip(alphas, plt.cm.viridis(np.linspace(0, 0.9, len(alphas)))):
    axes[0, 0].plot(x, H.htaf(x, a, 1.0), color=c, label=f"α={a:g}")
    axes[0, 1].semilogy(x, H.htaf_grad(x, a, 1.0), color=c, label=f"α={a:g}")
for b, c in zip(betas, plt.cm.plasma(np.linspace(0, 0.85, len(betas)))):
    axes[1, 0].plot(x, H.htaf(x, 4.0, b), color=c, label=f"β={b:g}")
    axes[1, 1].semilogy(x, H.htaf_grad(x, 4.0, b), color=c, label=f"β={b:g}")
axes[0, 0].set(title="htaf(x; α, β=1)")
axes[0, 1].set(title="htaf'(x; α, β=1), log scale", ylim=(1e-8, 10))
axes[1, 0].set(title="htaf(x; α=4, β)", xlabel="x")
axes[1, 1].set(title="htaf'(x; α=4, β), log scale", xlabel="x", ylim=(1e-8, 10))
for ax in axes.flat:
    ax.legend(fontsize=8)
fig.tight_layout()
savefig(fig, "01_alpha_beta")
plt.show()

print(" α    β   peak αβ/4   rails σ(−α), σ(α)")
for a, b in [(1, 1), (2, 1), (4, 1), (8, 1), (8, 2), (16, 1)]:
    lo, hi = H.htaf(jnp.array([-jnp.inf, jnp.inf]), a, b)
    print(f"{a:2d}  {b:3d}   {a * b / 4:8.2f}    {float(lo):.2e}, {float(hi):.6f}")
""",
    ),
    (
        "md",
        r"""
## 3. The float32 tail: custom VJP vs plain autodiff

Autodiff of `sigmoid(α * tanh(β * x))` multiplies by `1 − tanh²(βx)`. In float32,
`tanh(βx)` rounds to exactly ±1 once |βx| ≳ 9, so that factor (and the gradient) is exactly 0
there — the heavy tail, the whole point of HTAF, is lost exactly where a unit that is far
from its threshold needs it. `H.htaf` computes sech² and σ(u)σ(−u) from exponentials without
cancellation instead.

The reference below is the closed form in float64 written with the same cancellation-free
identities (sech²z = 4e^(−2|z|)/(1+e^(−2|z|))², σ(u)σ(−u) = e^(−|u|)/(1+e^(−|u|))²), since
even float64 `tanh` rounds to 1 past |z| ≈ 19.
""",
    ),
    (
        "code",
        r"""
def reference_grad(x, alpha, beta):
    # float64, no cancellation anywhere
    x = np.asarray(x, np.float64)
    z = np.abs(beta * x)
    u = np.abs(alpha * np.tanh(z))
    e2z, eu = np.exp(-2 * z), np.exp(-u)
    return alpha * beta * eu / (1 + eu) ** 2 * 4 * e2z / (1 + e2z) ** 2


alpha, beta = 8.0, 1.0
x32 = jnp.linspace(0.0, 45.0, 901, dtype=jnp.float32)
custom = jax.vmap(jax.grad(lambda v: H.htaf(v, alpha, beta)))(x32)
autodiff = jax.vmap(jax.grad(lambda v: jax.nn.sigmoid(alpha * jnp.tanh(beta * v))))(x32)
ref = reference_grad(x32, alpha, beta)

rel = lambda g: np.abs(np.asarray(g, np.float64) - ref) / ref
floor = 1e-40  # where autodiff returns exactly 0, drawn on the floor
fig, axes = plt.subplots(1, 2, figsize=(14, 4.6))
axes[0].semilogy(x32, ref, color="k", lw=3, alpha=0.35, label="float64 reference")
axes[0].semilogy(x32, np.maximum(custom, floor), color="tab:blue", lw=1.3,
                 label="float32, custom VJP (H.htaf)")
axes[0].semilogy(x32, np.maximum(autodiff, floor), color="tab:red", ls="--", lw=1.3,
                 label="float32, plain autodiff")
axes[0].axhline(floor, color="grey", lw=0.6)
axes[0].axhline(np.finfo(np.float32).tiny, color="grey", ls=":", lw=0.8)
axes[0].text(20, np.finfo(np.float32).tiny * 1e-2, "smallest normal float32 (below: 0 on CPUs)",
             color="grey", fontsize=8)
axes[0].text(1, floor * 30, "exactly 0", color="tab:red", fontsize=8)
axes[0].set(title=f"d htaf/dx, α={alpha:g}, β={beta:g}", xlabel="x", ylabel="htaf'(x)",
            ylim=(floor / 10, 10))
axes[0].legend(fontsize=8)
with np.errstate(divide="ignore"):
    axes[1].semilogy(x32, np.maximum(rel(custom), 1e-9), color="tab:blue", label="custom VJP")
    axes[1].semilogy(x32, np.maximum(rel(autodiff), 1e-9), color="tab:red", ls="--",
                     label="plain autodiff")
axes[1].set(title="relative error vs float64 (floored at 1e-9)", xlabel="x",
            ylabel="|g − g64| / g64", ylim=(1e-9, 10))
axes[1].legend(fontsize=8)
fig.tight_layout()
savefig(fig, "01_float32_tail")
plt.show()

print("    x     float64 ref     custom VJP      autodiff")
for v in [2.0, 4.0, 8.0, 9.0, 12.0, 20.0, 30.0, 40.0]:
    i = int(np.argmin(np.abs(np.asarray(x32) - v)))
    print(f"{float(x32[i]):5.1f}   {ref[i]:.4e}    {float(custom[i]):.4e}    {float(autodiff[i]):.4e}")
print("max relative error of the custom VJP for x ≤ 40:",
      f"{rel(custom)[np.asarray(x32) <= 40].max():.1e}")
""",
    ),
    (
        "md",
        r"""
## 4. Hard vs smooth forms

Two forms share one backward rule:

* **smooth**: `H.htaf(x)`: forward σ(α tanh βx), backward its true derivative;
* **hard** (straight-through): `hard = H.get_unit("htaf", alpha=α, beta=β)`, then
  `hard(x)`: forward H(x) ∈ {0, 1} (H(0) = 1), backward htaf'(x). Spikes, binary
  activations and hard ICBM concepts use it. `hard.sign(x)` is the ±1 version
  (sign(0) = +1, backward 2·htaf'). Every registry unit has the same two methods.

Same gradient, different forward:
""",
    ),
    (
        "code",
        r"""
x = jnp.linspace(-3, 3, 601)
hard = H.get_unit("htaf")
g_smooth = jax.vmap(jax.grad(H.htaf))(x)
g_hard = jax.vmap(jax.grad(hard))(x)
g_sign = jax.vmap(jax.grad(hard.sign))(x)
print("backward of the hard form == backward of the smooth form:",
      bool(jnp.allclose(g_smooth, g_hard)), "| sign form is 2x:", bool(jnp.allclose(g_sign, 2 * g_hard)))

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
axes[0].plot(x, H.htaf(x), lw=2, label="smooth: htaf(x)")
axes[0].plot(x, hard(x), lw=2, ls="--", label="hard: hard(x)")
axes[0].plot(x, hard.sign(x), lw=1.2, ls=":", label="hard signed: hard.sign(x)")
axes[0].set(title="forward", xlabel="x")
axes[1].plot(x, g_smooth, lw=2, label="jax.grad(htaf)")
axes[1].plot(x, g_hard, lw=2, ls="--", label="jax.grad(hard)")
axes[1].set(title="backward", xlabel="x")
for ax in axes:
    ax.legend(fontsize=8)
fig.tight_layout()
savefig(fig, "01_hard_vs_smooth")
plt.show()
""",
    ),
    (
        "md",
        r"""
### A small network of Heaviside units

A 2-16-16-1 network on a 2-D "two circles" problem whose hidden units are Heaviside steps,
trained two ways with the same optimiser and steps:

* **smooth**: train with `H.htaf` units, then *evaluate with hard units* (the ICBM recipe);
* **hard**: the hard form forward throughout (the SNN/BNN recipe).

The printout gives each run's accuracy with the units it was trained with and with hard
units. For the smooth run the difference is the hard-vs-soft gap: nothing made its units binary,
and the network leans on the values in between. The hard run trains the very network it
will run, so it has no gap. (`03_icbm_explore.ipynb` trains smooth concepts too and
measures the same gap on its concept layer.)
""",
    ),
    (
        "code",
        r"""
STEPS = 150 if SMALL else 2000
rng = np.random.default_rng(0)
n = 1024
radius = np.where(rng.random(n) < 0.5, 1.0, 2.0)
angle = rng.uniform(0, 2 * np.pi, n)
X = np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1) + 0.25 * rng.normal(size=(n, 2))
Y = (radius > 1.5).astype(np.float32)
X, Y = jnp.asarray(X, jnp.float32), jnp.asarray(Y)

ALPHA, BETA = 4.0, 4.0


UNITS = {
    "smooth": lambda v: H.htaf(v, ALPHA, BETA),
    "hard": H.get_unit("htaf", alpha=ALPHA, beta=BETA),
    "eval": H.get_unit("htaf", alpha=ALPHA, beta=BETA),
}


def init(key, sizes=(2, 16, 16, 1)):
    keys = jax.random.split(key, len(sizes) - 1)
    return [(jax.random.normal(k, (m, n)) * 2.0 / np.sqrt(m), jnp.zeros(n))
            for k, m, n in zip(keys, sizes[:-1], sizes[1:])]


def forward(params, x, unit):
    for w, b in params[:-1]:
        x = unit(x @ w + b)
    w, b = params[-1]
    return (x @ w + b)[:, 0]


def train(mode, seed=0):
    params = init(jax.random.key(seed))
    opt = optax.adam(1e-2)
    state = opt.init(params)
    unit = UNITS[mode]

    @jax.jit
    def step(params, state):
        loss, g = jax.value_and_grad(
            lambda p: optax.sigmoid_binary_cross_entropy(forward(p, X, unit), Y).mean())(params)
        updates, state = opt.update(g, state)
        return optax.apply_updates(params, updates), state, loss

    losses = []
    for _ in range(STEPS):
        params, state, loss = step(params, state)
        losses.append(float(loss))
    accuracy = lambda u: float(((forward(params, X, u) > 0) == (Y > 0.5)).mean())
    return params, losses, accuracy(unit), accuracy(UNITS["eval"])


runs = {mode: train(mode) for mode in ["smooth", "hard"]}
for mode, (_, losses, acc_train, acc_hard) in runs.items():
    print(f"{mode:7s} final train loss {losses[-1]:.3f}   accuracy with its training units "
          f"{acc_train:.3f}, with hard units {acc_hard:.3f}")
""",
    ),
    (
        "code",
        r"""
gx, gy = np.meshgrid(np.linspace(-3.2, 3.2, 200), np.linspace(-3.2, 3.2, 200))
grid = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], 1), jnp.float32)
fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
for mode, (_, losses, _, _) in runs.items():
    axes[0].plot(losses, label=mode)
axes[0].set(title="training loss (training forward)", xlabel="step", ylabel="cross-entropy", yscale="log")
axes[0].legend(fontsize=8)
for ax, (mode, (params, _, _, acc)) in zip(axes[1:], runs.items()):
    z = np.asarray(forward(params, grid, UNITS["eval"]) > 0).reshape(gx.shape)
    ax.contourf(gx, gy, z, levels=[-0.5, 0.5, 1.5], colors=["#dde8f5", "#f7dcc9"])
    ax.scatter(X[:, 0], X[:, 1], c=Y, s=3, cmap="coolwarm")
    ax.set(title=f"{mode}: hard-unit accuracy {acc:.2f}", aspect="equal")
fig.tight_layout()
savefig(fig, "01_heaviside_network")
plt.show()
""",
    ),
    (
        "md",
        r"""
Where to go next: `02_snn_fashion_mnist.ipynb` trains a spiking network with HTAF spikes,
`03_icbm_explore.ipynb` trains and explains an Implicit Concept Bottleneck Model.
""",
    ),
]
