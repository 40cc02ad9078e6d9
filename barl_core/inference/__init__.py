"""Prediction with a trained BARL model, one module per job.

- :mod:`~barl_core.inference.model`: :class:`LoadedModel`, :func:`load_model` (a checkpoint
  ready to predict, with the metadata prediction needs);
- :mod:`~barl_core.inference.window`: the Gaussian-blended sliding window over both branches
  and the disagreement map, in a z-ring buffer;
- :mod:`~barl_core.inference.memory`: what a prediction needs and what the machine has;
- :mod:`~barl_core.inference.predict`: :func:`predict_volume` on the input's exact grid;
- :mod:`~barl_core.inference.export`: :func:`predict_files`, NIfTI outputs beside the inputs;
- :mod:`~barl_core.inference.agreement`: per-branch agreement confidence and proposals.
"""
