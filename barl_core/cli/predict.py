"""``barl predict``: segment volumes with a trained model; write label and disagreement maps.

``--image`` is a file or a folder of volumes. With a file, ``--out`` may name the output
file (``.nii.gz``) or a folder; with a folder, ``--out`` is a folder and every output is
``NAME.nii.gz``. ``--disagreement`` (file or folder, likewise) adds the float maps of where
the two branches disagree. Every output lies on its input's exact grid.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from barl_core.errors import InputFileError
from barl_core.io.volume import (
    SUPPORTED_EXTENSIONS,
    read_volume,
    strip_extension,
    write_labels,
    write_volume,
)

__all__ = ["register", "run", "input_files"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict",
        help="segment volumes with a trained model",
        description="Sliding-window prediction with both branches; writes NIfTI label maps "
        "(and disagreement maps) on each input's grid.",
    )
    p.add_argument("--model", required=True, type=Path, metavar="CKPT", help="model file (model.pt)")
    p.add_argument("--image", required=True, type=Path, metavar="PATH_OR_DIR", help="a volume or a folder of volumes")
    p.add_argument("--out", required=True, type=Path, metavar="PATH_OR_DIR", help="output file (one input) or folder")
    p.add_argument("--disagreement", type=Path, metavar="PATH_OR_DIR", help="also write disagreement maps here")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--overlap", type=float, default=0.5, help="window overlap in [0, 1) (default 0.5)")
    p.add_argument("--batch", type=int, default=1, metavar="N", help="windows per forward pass (default 1)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run)


def _is_volume_name(path: Path) -> bool:
    return path.name.lower().endswith(SUPPORTED_EXTENSIONS)


def input_files(path: Path) -> list[Path]:
    """The volumes to predict: the file itself, or a folder's supported files (sorted).

    Raises
    ------
    InputFileError
        Missing path, or a folder without any supported volume.
    """
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and _is_volume_name(p) and not p.name.startswith("."))
        if not files:
            raise InputFileError(f"{path}: no volume ({', '.join(SUPPORTED_EXTENSIONS)}) in this folder")
        return files
    raise InputFileError(f"{path}: no such file or folder")


def _target(out: Path, name: str, suffix: str, single: bool) -> Path:
    """Output file: ``out`` itself when it names a volume file (one input), else ``out/NAME``."""
    if single and _is_volume_name(out):
        return out
    if out.exists() and not out.is_dir():
        raise InputFileError(f"{out}: exists and is not a folder")
    return out / f"{name}{suffix}.nii.gz"


def run(args: argparse.Namespace) -> int:
    from barl_core.inference.export import DISAGREEMENT_SUFFIX
    from barl_core.inference.model import load_model
    from barl_core.inference.predict import predict_volume

    files = input_files(args.image)
    single = len(files) == 1 and args.image.is_file()
    if not single and _is_volume_name(args.out):
        raise InputFileError(f"{args.out}: several inputs need an output folder, not a file name")
    model = load_model(args.model, device=args.device)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    say(f"model: {args.model} ({model.metadata.get('method', '?')}, classes {', '.join(model.class_names)}) on {model.device}")
    for i, path in enumerate(files, start=1):
        name = strip_extension(path.name)
        volume = read_volume(path)
        pred = predict_volume(model, volume, overlap=args.overlap, sw_batch_size=args.batch)
        lab = write_labels(pred.labels, volume, _target(args.out, name, "", single))
        line = f"[{i}/{len(files)}] {name}: labels -> {lab}"
        if args.disagreement is not None:
            dis = write_volume(
                volume.with_array(pred.disagreement.astype(np.float32)),
                _target(args.disagreement, name, DISAGREEMENT_SUFFIX, single),
            )
            line += f"; disagreement (mean {float(np.mean(pred.disagreement, dtype=np.float64)):.4f}) -> {dis}"
        say(line)
    return 0


if __name__ == "__main__":  # pragma: no cover
    from barl_core.cli.main import main

    sys.exit(main(["predict", *sys.argv[1:]]))
