"""The ``oom`` part: a real CUDA out-of-memory, answered by the trainer's and prediction's back-off.

On the CPU the same back-off is driven by one injected ``OutOfMemoryError`` (recorded as
``simulated``), so the path cannot rot before a GPU machine runs it.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from .device import is_cuda
from .inputs import full_config, phantom_data, train_shape

__all__ = ["check_oom"]


def check_oom(args: argparse.Namespace, work: Path) -> dict:
    """A real CUDA out-of-memory (capped share of the GPU), answered by the back-off."""
    import torch

    from barl_core.inference.model import LoadedModel
    from barl_core.inference.predict import predict_volume
    from barl_core.io.volume import Volume
    from barl_core.networks.unet import BiBranchNet, NetworkConfig
    from barl_core.training import trainer as trainer_mod
    from barl_core.training.checkpoint import load_checkpoint
    from barl_core.training.run import train

    img, lab, names = phantom_data(args, work, train_shape(args))
    cfg = full_config(args, "barl", 3, len(names), names)
    if args.tiny:  # leave the back-off something to shrink
        cfg = replace(cfg, batch_labeled=2, batch_unlabeled=2)
    out: dict = {"simulated": not is_cuda(args.device), "patch_before": list(cfg.patch_size),
                 "batch_before": [cfg.batch_labeled, cfg.batch_unlabeled]}
    restore = None
    if is_cuda(args.device):
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(args.oom_fraction)
        out["memory_fraction"] = args.oom_fraction
    else:  # inject one OutOfMemoryError into the first training step: the same back-off path
        original = trainer_mod.Trainer._train_step_once
        state = {"raised": False}

        def once(self, iteration):
            if not state["raised"]:
                state["raised"] = True
                raise torch.OutOfMemoryError("simulated: CUDA out of memory")
            return original(self, iteration)

        trainer_mod.Trainer._train_step_once = once
        restore = (trainer_mod.Trainer, original)
    messages: list[str] = []
    try:
        result = train(cfg, img, lab, work / "oom_run",
                                   callback=lambda ev: messages.append(str(getattr(ev, "message", "") or "")))
        final = load_checkpoint(result.model_path)["config"]
        out["train"] = f"finished ({result.status}, {result.iterations_done} iterations)"
        out["patch_after"] = list(final.get("patch_size", []))
        out["batch_after"] = [final.get("batch_labeled"), final.get("batch_unlabeled")]
    except Exception as exc:  # noqa: BLE001 - the check reports what happened
        out["train"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    finally:
        if restore is not None:
            restore[0]._train_step_once = restore[1]
    out["backoff_messages"] = [m for m in messages if "memory" in m.lower()][:5]
    if is_cuda(args.device):
        width = 4 if args.tiny else 32
        net = BiBranchNet(NetworkConfig(num_classes=4, base_channels=width)).eval()
        model = LoadedModel.from_module(net, patch_size=(96, 96, 96) if not args.tiny else (16, 16, 16),
                                        device=args.device)
        vol = Volume(np.random.default_rng(0).normal(0, 1, tuple(args.oom_predict_size)).astype(np.float32))
        try:
            predict_volume(model, vol, sw_batch_size=args.oom_sw_batch, check_memory=False)
            out["predict"] = "finished"
        except Exception as exc:  # noqa: BLE001
            out["predict"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    print(f"[gpu_check] oom: train {out['train']}, predict {out.get('predict', 'n/a')}", flush=True)
    return out
