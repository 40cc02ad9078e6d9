"""Per-term gradient norms: how hard each loss term pulls on the network.

A loss value says little about a term's influence: a term whose loss is near zero can still
move the weights (its gradient need not vanish), and a large loss with a tiny weight barely
does. The norm of the gradient a term contributes, ``|| d(w_t * L_t) / d theta ||_2`` over all
trainable parameters ``theta`` on the same batch, is the quantity that competes in the
optimiser's update. The trainer computes it at each validation (one extra backward pass per
term, so not every iteration) and writes ``gradnorm_<term>`` and the factor ``gradweight_<term>``
(``w_t``, ramp-up included) to ``metrics.jsonl``; the norm of the unweighted term is their
ratio.
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

    Returns
    -------
    dict of str to float
        ``{"gradnorm_<term>": norm}``; 0.0 for a term not connected to the parameters.
    """
    out: dict[str, float] = {}
    for term, weight in weights.items():
        value = losses.get(term)
        if value is None:
            continue
        if not value.requires_grad:
            out[f"gradnorm_{term}"] = 0.0
            continue
        grads = torch.autograd.grad(
            value.float() * (weight * scale), list(params), retain_graph=True, allow_unused=True
        )
        squares = [g.detach().float().pow(2).sum() for g in grads if g is not None]
        norm = torch.stack(squares).sum().sqrt().item() if squares else 0.0
        out[f"gradnorm_{term}"] = float(norm) / scale
    return out
