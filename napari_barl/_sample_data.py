"""Sample data: the dental CBCT phantom with its ground truth."""

from __future__ import annotations

import numpy as np

from ._layers import geometry_kwargs

__all__ = ["make_sample_data", "make_small_sample_data", "phantom_volumes", "SAMPLE_SHAPE"]

#: Modest on purpose: opens in a second and trains on a laptop CPU.
SAMPLE_SHAPE = (64, 96, 96)
SMALL_SHAPE = (32, 48, 48)


def phantom_volumes(shape: tuple[int, int, int] = SAMPLE_SHAPE, seed: int = 0) -> tuple:
    """Return ``(image Volume, ground-truth labels, class names)`` of the phantom."""
    from barl_core.data.phantom import PHANTOM_CLASSES, make_phantom

    image, labels = make_phantom(shape=shape, seed=seed)
    image.metadata["name"] = "CBCT phantom"
    return image, np.asarray(labels, dtype=np.uint8), list(PHANTOM_CLASSES)


def make_small_sample_data() -> list[tuple]:
    """Return a (32, 48, 48) phantom: a train-predict round in under a minute on 2 CPU cores."""
    return make_sample_data(SMALL_SHAPE)


def make_sample_data(shape: tuple[int, int, int] = SAMPLE_SHAPE) -> list[tuple]:
    """Layer data tuples: the phantom image and its "ground truth" Labels layer."""
    image, labels, classes = phantom_volumes(shape)
    img_kwargs = geometry_kwargs(image)
    img_kwargs.update(name="CBCT phantom", colormap="gray")
    lab_kwargs = geometry_kwargs(image, {"barl_class_names": classes})
    lab_kwargs.update(name="ground truth", opacity=0.4, visible=False)
    return [(image.array, img_kwargs, "image"), (labels, lab_kwargs, "labels")]
