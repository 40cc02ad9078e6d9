"""Per-term gradient norms: how hard each loss term pulls on the network.

A loss value says little about a term's influence: a term whose loss is near zero can still
move the weights (its gradient need not vanish), and a large loss with a tiny weight barely
does. The norm of the gradient a term contributes, ``|| d(w_t * L_t) / d theta ||_2`` over all
trainable parameters ``theta`` on the same batch, is the quantity that competes in the
optimiser's update. The trainer computes it at each validation (one extra backward pass per
term, so not every iteration) and writes ``gradnorm_<term>`` and the factor ``gradweight_<term>``
(``w_t``, ramp-up included) to ``metrics.jsonl``; the norm of the unweighted term is their
ratio. A small norm can still matter if it points where the supervised gradient does not, so
``gradcos_<term>`` records the cosine between each term's gradient and the supervised term's
(1: the same direction, 0: orthogonal, -1: against it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

__all__ = ["term_gradient_norms"]


def term_gradient_norms(
    losses: Mapping[str, Tensor],
    weights: Mapping[str, float],
    params: Sequence[nn.Parameter],
    scale: float = 1.0,
    reference: str = "sup",
) -> dict[str, float]:
    """Measure the L2 norm of the gradient of ``weights[t] * losses[t]`` over ``params``, per term.

    Leaves ``.grad`` untouched and keeps the graph (the trainer's backward pass of the total
    follows), so the training step itself is unchanged.

    Parameters
    ----------
    losses : mapping of str to Tensor
        A method's ``training_step`` output, graph attached.
    weights : mapping of str to float
        ``TrainingMethod.term_weights``: the terms to measure and their factor in the total.
        A term missing from ``losses`` (switched off) is skipped.
    params : sequence of Parameter
        The trainable parameters (parameters a term does not reach count as zero).
    scale : float
        Multiply the term before differentiating and divide the norm after (the AMP loss
        scale, so that fp16 gradients do not underflow).
    reference : str
        The term the others' directions are compared with.

    Returns
    -------
    dict of str to float
        ``{"gradnorm_<term>": norm}``, 0.0 for a term not connected to the parameters; and
        ``{"gradcos_<term>": cosine}`` with the reference term's gradient for every other
        term when both gradients are non-zero.
    """
    params = list(params)
    out: dict[str, float] = {}
    vectors: dict[str, Tensor] = {}
    for term, weight in weights.items():
        value = losses.get(term)
        if value is None:
            continue
        if not value.requires_grad:
            out[f"gradnorm_{term}"] = 0.0
            continue
        grads = torch.autograd.grad(
            value.float() * (weight * scale), params, retain_graph=True, allow_unused=True
        )
        flat = torch.cat([
            (g.detach().float() if g is not None else torch.zeros_like(p, dtype=torch.float32)).reshape(-1)
            for g, p in zip(grads, params, strict=True)
        ]) if params else torch.zeros(0)
        norm = float(flat.norm()) if flat.numel() else 0.0
        out[f"gradnorm_{term}"] = norm / scale
        if norm > 0:
            vectors[term] = flat / norm
    ref = vectors.get(reference)
    if ref is not None:
        for term, unit in vectors.items():
            if term != reference:
                out[f"gradcos_{term}"] = float(torch.dot(unit, ref).clamp(-1.0, 1.0))
    return out
