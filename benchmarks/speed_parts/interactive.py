"""What the radiologist waits for on the app's phantom: the current slice, the whole case, a job."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks import common

from .phantoms import phantom_cases

__all__ = ["time_interactive"]


def _foreground_dice(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> float:
    from barl_core.evaluation.metrics import dice

    return float(np.mean([dice(pred == k, truth == k) for k in range(1, num_classes)]))


def time_interactive(args: argparse.Namespace, work: Path) -> dict:
    """What the app waits for on its phantom after training: current slice, whole case, job."""
    from barl_core.data.phantom import PHANTOM_CLASSES, make_phantom
    from barl_core.inference.model import load_model
    from barl_core.inference.predict import predict_slab, predict_volume
    from barl_core.io.volume import write_volume
    from barl_core.runtime.jobs import PredictJob

    shape = tuple(args.app_size)
    cases, labels = phantom_cases(4, shape)
    cfg = common.build_train_config(
        method="barl", iterations=args.app_iterations, patch=args.app_patch, base_channels=args.base_channels,
        num_classes=len(PHANTOM_CLASSES), seed=0, batch_labeled=1, batch_unlabeled=1, device=args.device,
        class_names=PHANTOM_CLASSES, num_threads=args.threads)
    img_dir, lab_dir = common.materialise(cases, labels, work / "app_data")
    model_path, train_s = common.train_model(cfg, img_dir, lab_dir, work / "app_run")
    model = load_model(model_path, device=args.device)
    vol, truth = make_phantom(shape=shape, seed=11)
    vol.metadata = {}
    z = shape[0] // 2
    out: dict = {"volume_zyx": list(shape), "patch_zyx": list(args.app_patch), "base_channels": args.base_channels,
                 "train_iterations": args.app_iterations, "train_s": round(train_s, 1), "slice": z,
                 "overlap": args.overlap}
    predict_slab(model, vol, (z, z + 1), overlap=args.overlap)  # warm-up: torch's one-time costs
    t0 = time.perf_counter()
    slab = predict_slab(model, vol, (z, z + 1), overlap=args.overlap)
    out["slice_s"] = time.perf_counter() - t0
    # where the time goes: the network's forward passes against the whole prediction
    spent = [0.0]
    forward = model.branch_logits

    def timed_forward(x):
        t = time.perf_counter()
        res = forward(x)
        spent[0] += time.perf_counter() - t
        return res

    model.branch_logits = timed_forward  # instance attribute: shadows the method for these two runs
    t0 = time.perf_counter()
    whole = predict_volume(model, vol, overlap=args.overlap)
    out["whole_s"] = time.perf_counter() - t0
    out["network_fraction"] = spent[0] / out["whole_s"]
    spent[0] = 0.0
    t0 = time.perf_counter()
    whole32 = predict_volume(model, vol, overlap=args.overlap, precision="float32")
    out["whole_float32_s"] = time.perf_counter() - t0
    out["network_fraction_float32"] = spent[0] / out["whole_float32_s"]
    del model.branch_logits
    # fewer, larger windows: the whole case as one window (one forward pass, no overlap)
    t0 = time.perf_counter()
    one = predict_volume(model, vol, window=shape, overlap=0.0)
    out["whole_one_window_s"] = time.perf_counter() - t0
    out["one_window_label_agreement"] = float((one.labels == whole.labels).mean())
    out["dice_one_window"] = _foreground_dice(one.labels, truth, model.num_classes)
    out["slice_label_agreement"] = float((slab.labels[0] == whole.labels[z]).mean())
    out["auto_vs_float32_label_agreement"] = float((whole.labels == whole32.labels).mean())
    out["dice_auto"] = _foreground_dice(whole.labels, truth, model.num_classes)
    out["dice_float32"] = _foreground_dice(whole32.labels, truth, model.num_classes)
    image = write_volume(vol, work / "app_case" / "case.nii.gz")
    t0 = time.perf_counter()
    handle = PredictJob.start(model_path, [image], work / "app_pred", device=args.device, num_threads=args.threads)
    final = None
    while final is None:
        for update in handle.poll():
            if update.kind in ("done", "error", "cancelled"):
                final = update
        time.sleep(0.05)
    handle.wait(30)
    out["job_s"] = time.perf_counter() - t0
    out["job_status"] = final.kind
    print(f"[speed] interactive: slice {out['slice_s']:.1f} s, whole {out['whole_s']:.1f} s "
          f"(float32 {out['whole_float32_s']:.1f} s), job {out['job_s']:.1f} s; slice agreement "
          f"{out['slice_label_agreement']:.4f}, auto/float32 agreement {out['auto_vs_float32_label_agreement']:.4f}",
          flush=True)
    return out
