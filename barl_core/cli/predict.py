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

from barl_core.cli.guards import add_series_id, check_output_folder, check_outputs, same_path
from barl_core.data.discovery import is_volume_name, volume_files
from barl_core.errors import InputFileError, OutputFileError
from barl_core.io.volume import (
    SUPPORTED_EXTENSIONS,
    is_supported_path,
    read_volume,
    remove_stale_temporaries,
    strip_extension,
    write_labels,
    write_volume,
)

__all__ = ["register", "run", "input_files"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``barl predict`` and its options to the subcommands."""
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
    add_series_id(p)
    p.set_defaults(func=run)


def input_files(path: Path) -> list[Path]:
    """Return the volumes to predict: the file itself, a DICOM folder, or a folder's volume files.

    Raises
    ------
    InputFileError
        Missing or inaccessible path, or a folder without any supported volume.
    """
    try:
        if path.is_file():
            return [path]
        if path.is_dir():
            files = volume_files(path)
            if files:
                return files
            if is_supported_path(path):  # a DICOM series folder is one volume
                return [path]
            raise InputFileError(f"{path}: no volume ({', '.join(SUPPORTED_EXTENSIONS)}) in this folder")
    except OSError as exc:  # a link loop, a name too long, no permission
        raise InputFileError(f"{path}: cannot access: {exc.strerror or exc}") from None
    raise InputFileError(f"{path}: no such file or folder")


def _is_single(image: Path, files: list[Path]) -> bool:
    return len(files) == 1 and (image.is_file() or files[0] == image)


def _target(out: Path, name: str, suffix: str, single: bool) -> Path:
    """Output file: ``out`` itself when it names a volume file (one input), else ``out/NAME``."""
    if single and is_volume_name(out.name):
        return out
    return out / f"{name}{suffix}.nii.gz"


def plan_outputs(args: argparse.Namespace, files: list[Path], single: bool) -> list[tuple[Path, Path | None]]:
    """(labels, disagreement) target of each input, checked before any work.

    Raises
    ------
    OutputFileError
        An output would replace an input (or the model), two outputs share a name, or an
        output folder cannot be written to.
    """
    from barl_core.inference.outputs import DISAGREEMENT_SUFFIX

    plan = []
    for path in files:
        name = strip_extension(path.name)
        dis = args.disagreement
        plan.append((
            _target(args.out, name, "", single),
            _target(dis, name, DISAGREEMENT_SUFFIX, single) if dis is not None else None,
        ))
    for folder in {args.out, args.disagreement} - {None}:
        if same_path(folder, args.image) and args.image.is_dir():
            raise OutputFileError(
                f"{folder}: is the input folder; write predictions to another folder"
            )
    outputs = [t for pair in plan for t in pair if t is not None]
    check_outputs(outputs, [*files, args.model])
    for folder in {t.parent for t in outputs}:
        check_output_folder(folder)
    return plan


def run(args: argparse.Namespace) -> int:
    """Predict every input volume with a checkpoint; return the exit code."""
    from barl_core.inference.model import load_model
    from barl_core.inference.predict import predict_volume

    files = input_files(args.image)
    single = _is_single(args.image, files)
    if not single and is_volume_name(args.out.name):
        raise InputFileError(f"{args.out}: several inputs need an output folder, not a file name")
    plan = plan_outputs(args, files, single)
    for folder in {t.parent for pair in plan for t in pair if t is not None}:
        remove_stale_temporaries(folder, recursive=False)  # left by a killed earlier run
    model = load_model(args.model, device=args.device)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    say(f"model: {args.model} ({model.metadata.get('method', '?')}, classes {', '.join(model.class_names)}) on {model.device}")
    for i, (path, (lab_target, dis_target)) in enumerate(zip(files, plan, strict=True), start=1):
        name = strip_extension(path.name)
        volume = read_volume(path, series_id=args.series_id)
        pred = predict_volume(model, volume, overlap=args.overlap, sw_batch_size=args.batch)
        lab = write_labels(pred.labels, volume, lab_target)
        line = f"[{i}/{len(files)}] {name}: labels -> {lab}"
        if dis_target is not None:
            dis = write_volume(volume.with_array(pred.disagreement.astype(np.float32)), dis_target)
            line += f"; disagreement (mean {float(np.mean(pred.disagreement, dtype=np.float64)):.4f}) -> {dis}"
        say(line)
    return 0


if __name__ == "__main__":  # pragma: no cover
    from barl_core.cli.main import main

    sys.exit(main(["predict", *sys.argv[1:]]))
