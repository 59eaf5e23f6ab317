"""One eval image of a finished ICBM run, in words: the concepts that are on, what each
adds to the class logits, and (``--flip K``) what switching concept K changes.

    python -m experiments.icbm_explain --workdir workdirs/icbm --index 7 [--flip 3]
    python -m experiments.icbm_explain --workdir workdirs/icbm --index 7 --nec 5 --figures

``--nec N`` reads the prediction with the head cut to the N largest weights per class and
refitted on the run's training images with the concepts frozen (experiments.icbm_nec: the
refit chosen on a held-out sixth of them), so a handful of concepts decide it. ``--figures``
writes ``<workdir>/concepts/nec<N>/``: ``explain_<index>.png`` (each deciding concept's
top images, what it detects and its class purity) and ``classes.png`` (each class's N
concepts side by side).
"""

from __future__ import annotations

import os
import sys

import jax.numpy as jnp
import numpy as np
from absl import flags
from absl import logging as absl_logging

from experiments import icbm_analysis, icbm_nec
from htaf_jax import interpret
from htaf_jax.data import class_names
from htaf_jax.interpret.explain import explain
from htaf_jax.train import cli, load_config, restore_params
from htaf_jax.train.restore import model_from_run


def restore_variables(workdir: str) -> dict:
    """``{"params", "batch_stats"}`` of the latest checkpoint in ``workdir`` (host arrays)."""
    restored = restore_params(workdir)
    return {"params": restored.params, "batch_stats": restored.batch_stats}


def _sparse_head(config, model, variables, kernel, bias, nec: int):
    """The head cut to ``nec`` concepts per class and refitted on the run's training images
    (experiments.icbm_nec.sparse_heads): (kernel, bias, the RefitChoice)."""
    x_train, y_train, *_ = icbm_nec.data(config)
    z_train = interpret.concept_activations(model, variables, x_train, batch_size=1000).hard
    choice = icbm_nec.sparse_heads(
        z_train, y_train, kernel, bias, bool(config.model.get("nonneg_head", False)), (nec,)
    )[nec]
    return choice.head.kernel, choice.head.bias, choice


def _error(message: str) -> None:
    print(f"icbm_explain: error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> int:

    values = flags.FlagValues()
    flags.DEFINE_string("workdir", None, "Work dir of a finished ICBM run.", flag_values=values)
    flags.DEFINE_integer(
        "index", 0, "Index of the image in the run's eval split.", flag_values=values
    )
    flags.DEFINE_integer(
        "flip", None, "Also switch this concept and show what changes.", flag_values=values
    )
    flags.DEFINE_integer(
        "nec",
        None,
        "Read the prediction with the head cut to this many "
        "concepts per class and refitted (default: the run's own head).",
        flag_values=values,
        lower_bound=1,
    )
    flags.DEFINE_bool(
        "figures",
        False,
        "Write the explanation's and the classes' concept "
        "figures to <workdir>/concepts/nec<N>/ (with --nec).",
        flag_values=values,
    )
    cli.parse_command(values, list(sys.argv if argv is None else argv), __doc__)
    workdir, index, flip = values.workdir, values.index, values.flip
    if not workdir:
        _error("--workdir is required")
    try:
        config = load_config(workdir)
    except FileNotFoundError as e:
        _error(f"{e} (train one first: python -m experiments.icbm --workdir {workdir})")
    if config.model.name != "icbm":
        _error(f"{workdir} holds a {config.model.name!r} model, not an ICBM")
    absl_logging.set_verbosity(absl_logging.ERROR)  # orbax's read-only notices
    variables, (model, _) = restore_variables(workdir), model_from_run(workdir, config)
    images, labels, split = icbm_analysis.load_eval_set(config)
    if not 0 <= index < len(labels):
        _error(f"--index must be in [0, {len(labels)})")
    x = jnp.asarray(images[index : index + 1])
    acts = interpret.concept_activations(model, variables, x)
    kernel, bias = interpret.head_weights(variables, model)
    names = class_names(config.dataset, config.get("data_dir"))
    # A concept's label: what it detects over the whole split (dominant class, share).
    every = interpret.concept_activations(model, variables, images, batch_size=1000)
    concept_names = interpret.concept_labels(every.hard, labels, names)
    print(f"{split} example {index} — {icbm_analysis.describe_model(config.model)}")
    if values.nec is not None:
        kernel, bias, head = _sparse_head(config, model, variables, kernel, bias, values.nec)
        print(
            f"head cut to NEC={values.nec} concepts per class and refitted (Adam rate "
            f"{head.learning_rate:g}, {head.steps} steps, chosen on validation: "
            f"{100 * head.validation_accuracy:.2f}%); {split} accuracy "
            f"{100 * interpret.head_accuracy(head.head, every.hard, labels):.2f}%"
        )
    print(
        interpret.explain_text(
            acts.hard[0],
            kernel,
            bias,
            label=int(labels[index]),
            class_names=names,
            concept_names=concept_names,
        )
    )
    if values.figures and values.nec is not None:
        folder = os.path.join(workdir, "concepts", f"nec{values.nec}")
        shown = images * 0.5 + 0.5 if images.min() < 0 else images
        why = explain(acts.hard[0], kernel, bias, concept_names)
        written = [os.path.join(folder, "classes.png")]
        interpret.save_class_overview(
            written[0], shown, every.preactivations, kernel, kernel != 0, labels, names
        )
        if why.concepts:  # none when the head's bias alone decides
            written.append(os.path.join(folder, f"explain_{index}.png"))
            interpret.save_concept_overview(
                written[-1],
                shown,
                every.preactivations,
                [k for k, *_ in why.concepts],
                8,
                [f"c{k}: {name}\n{d:+.2f} to margin" for k, name, _, d in why.concepts],
            )
        print(f"\nfigures: {', '.join(written)}")
    if flip is not None:
        out = interpret.intervene(model, variables, x, flip, 1.0 - acts.hard[0, flip])
        change = np.asarray(out.logits_after[0] - out.logits_before[0])
        # Switching z_k changes every logit by ±V[k, c]: list the classes it moves most.
        moved = ", ".join(f"{names[c]} {change[c]:+.3f}" for c in np.argsort(-np.abs(change))[:4])
        print(
            f"\nintervention: c{flip} switched {'on' if out.concepts[0, flip] else 'off'}: "
            f"prediction {names[out.prediction_before[0]]} → {names[out.prediction_after[0]]} "
            f"(largest logit changes: {moved})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
