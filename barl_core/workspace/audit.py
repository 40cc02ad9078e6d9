"""Audit bundle: everything a reviewer needs to check, and reproduce, one case's mask.

``export_bundle(workspace, case, folder)`` writes into ``folder/<case>/``:

- ``<case>_mask.nii.gz`` the final mask on the source grid: the model's prediction, with every
  human-annotated slice replaced by the human's labels (only when the case was predicted);
- ``<case>_labels.nii.gz`` the sparse human labels (255 = not annotated);
- ``<case>_prediction.nii.gz`` the raw prediction of the current model (when predicted);
- ``labels.txt`` an ITK-SNAP label description file and ``labels.ctbl`` a 3D Slicer colour
  table (class names and colours, same colours in both);
- ``model.pt`` a copy of the checkpoint that predicted (with its SHA-256 in the report);
- ``report.json`` and ``report.html``: slices labelled and how (provenance), model version
  and hyper-parameters, disagreement before/after (first and current version), frozen
  validation metrics, and the commands that rebuild the mask.
"""

from __future__ import annotations

import hashlib
import html
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from barl_core.data.labels import IGNORE_INDEX
from barl_core.io.volume import atomic_path, write_labels

__all__ = [
    "AuditBundle",
    "export_bundle",
    "class_colors",
    "itksnap_label_text",
    "slicer_ctbl_text",
    "final_mask",
]

_PALETTE = [
    (0, 0, 0),
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 190),
]
_MAX_MODEL_COPY = 512 * 2**20


@dataclass
class AuditBundle:
    """Paths of the files written (None where not applicable)."""

    folder: Path
    mask: Path | None
    labels: Path
    prediction: Path | None
    itksnap: Path
    ctbl: Path
    report_json: Path
    report_html: Path
    model: Path | None


def class_colors(n: int) -> list[tuple[int, int, int]]:
    """Return a fixed, distinct RGB colour per class (background black)."""
    out = []
    for k in range(n):
        if k < len(_PALETTE):
            out.append(_PALETTE[k])
        else:
            rng = np.random.default_rng(k)
            out.append(tuple(int(v) for v in rng.integers(40, 256, 3)))
    return out


def itksnap_label_text(class_names: list[str]) -> str:
    """ITK-SNAP label description file (``IDX R G B A VIS MSH "LABEL"``)."""
    lines = [
        "################################################",
        "# ITK-SnAP Label Description File",
        "# File format: ",
        "# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL",
        "# written by napari-barl",
        "################################################",
    ]
    for k, (name, (r, g, b)) in enumerate(
        zip(class_names, class_colors(len(class_names)), strict=True)
    ):
        a, vis = (0, 0) if k == 0 else (1, 1)
        label = "Clear Label" if k == 0 else name.replace('"', "'")
        lines.append(f'{k:5d} {r:5d} {g:4d} {b:4d} {a:8d} {vis:2d} {vis:2d}    "{label}"')
    return "\n".join(lines) + "\n"


def slicer_ctbl_text(class_names: list[str]) -> str:
    """3D Slicer colour table (``index name R G B A``; names without spaces)."""
    lines = ["# Color table file written by napari-barl", f"# {len(class_names)} values"]
    for k, (name, (r, g, b)) in enumerate(
        zip(class_names, class_colors(len(class_names)), strict=True)
    ):
        safe = "_".join(str(name).split()) or f"class_{k}"
        lines.append(f"{k} {safe} {r} {g} {b} {0 if k == 0 else 255}")
    return "\n".join(lines) + "\n"


def final_mask(labels: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Return the prediction, with the human's label wherever a voxel was annotated.

    Voxel by voxel, not slice by slice: a scribbled slice keeps the prediction where it
    was left unknown, so the ignore value (255) never reaches the mask.
    """
    labels = np.asarray(labels)
    return np.where(labels != IGNORE_INDEX, labels, np.asarray(prediction)).astype(np.uint8)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def export_bundle(
    workspace, case: str, folder: str | Path, *, copy_model: bool = True
) -> AuditBundle:
    """Write the audit bundle of ``case`` into ``folder/<case>/`` (see the module docstring)."""
    ws = workspace
    ws.record(case)
    out = Path(folder) / case
    out.mkdir(parents=True, exist_ok=True)
    ref = ws.reference(case)
    labels = ws.load_labels(case)
    prediction = ws.load_prediction(case)
    names = list(ws.class_names)

    lab_path = write_labels(labels, ref, out / f"{case}_labels.nii.gz")
    pred_path = mask_path = None
    if prediction is not None:
        pred_path = write_labels(prediction, ref, out / f"{case}_prediction.nii.gz")
        mask_path = write_labels(final_mask(labels, prediction), ref, out / f"{case}_mask.nii.gz")
    snap = _write_text(out / "labels.txt", itksnap_label_text(names))
    ctbl = _write_text(out / "labels.ctbl", slicer_ctbl_text(names))

    rec = ws.record(case)
    version = None
    if rec.prediction_model:
        version = ws.versions.by_path(rec.prediction_model)
    version = version or ws.current_version()
    model_src = None
    if rec.prediction_model:
        p = Path(rec.prediction_model)
        model_src = p if p.is_absolute() else ws.folder / p
    model_copy = None
    model_info = None
    if model_src is not None and model_src.exists():
        model_info = {"workspace_path": str(model_src), "sha256": _sha256(model_src)}
        if copy_model and model_src.stat().st_size <= _MAX_MODEL_COPY:
            model_copy = out / "model.pt"
            shutil.copy2(model_src, model_copy)
            model_info["bundle_copy"] = model_copy.name

    history = [v for v in ws.versions.versions if case in v.disagreement]
    disagreement = {
        "before": None
        if not history
        else {"version": history[0].id, "score": history[0].disagreement[case]},
        "after": None
        if not history
        else {"version": history[-1].id, "score": history[-1].disagreement[case]},
        "current": rec.disagreement_score,
    }
    slices = [
        {"z": int(z), **{k: v for k, v in d.items()}}
        for z, d in ws.provenance.summary(case).items()
        if int(z) in set(rec.annotated_slices)
    ]
    for z in rec.annotated_slices:  # slices annotated before provenance existed
        if not any(s["z"] == z for s in slices):
            slices.append(
                {
                    "z": int(z),
                    "how": "unknown",
                    "time": None,
                    "version": None,
                    "model_version": None,
                    "dice_to_proposal": None,
                    "note": "",
                    "n_versions": 0,
                }
            )
    slices.sort(key=lambda s: s["z"])
    counts: dict[str, int] = {}
    for s in slices:
        counts[s["how"]] = counts.get(s["how"], 0) + 1
    model_file = (
        model_copy.name if model_copy else (model_info or {}).get("workspace_path", "MODEL.pt")
    )
    report = {
        "format": "napari-barl-audit",
        "format_version": 1,
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "case": case,
        "source_image": str(ws.image_path(case)),
        "geometry": ref.geometry(),
        "classes": [
            {"index": k, "name": n, "rgb": list(c)}
            for k, (n, c) in enumerate(zip(names, class_colors(len(names)), strict=True))
        ],
        "files": {
            k: (None if v is None else Path(v).name)
            for k, v in {
                "mask": mask_path,
                "labels": lab_path,
                "prediction": pred_path,
                "itksnap_labels": snap,
                "slicer_ctbl": ctbl,
                "model": model_copy,
            }.items()
        },
        "annotated_slices": slices,
        "annotation_counts": counts,
        "model": model_info,
        "model_version": None
        if version is None
        else {k: v for k, v in asdict(version).items() if k not in ("disagreement",)},
        "hyper_parameters": None if version is None else version.config,
        "validation_metrics": None if version is None else version.metrics,
        "disagreement": disagreement,
        "reproduce": {
            "steps": [
                f"barl predict --model {model_file} --image {ws.image_path(case)} --out prediction.nii.gz",
                "replace every annotated slice of the prediction by the slice of "
                f"{lab_path.name} (values != 255): barl_core.workspace.audit.final_mask(labels, prediction)",
            ],
            "python": (
                "from barl_core.io.volume import read_volume, write_labels\n"
                "from barl_core.workspace.audit import final_mask\n"
                f"lab = read_volume('{lab_path.name}'); pred = read_volume('prediction.nii.gz')\n"
                "write_labels(final_mask(lab.array, pred.array), lab, 'mask.nii.gz')"
            ),
            "note": "prediction is deterministic on the same device; GPU vs CPU may differ "
            "in a few boundary voxels",
        },
    }
    rj = _write_text(out / "report.json", json.dumps(report, indent=1, default=str))
    rh = _write_text(out / "report.html", _html(report))
    return AuditBundle(out, mask_path, lab_path, pred_path, snap, ctbl, rj, rh, model_copy)


def _html(r: dict) -> str:
    e = html.escape

    def table(rows: list[list], head: list[str]) -> str:
        th = "".join(f"<th>{e(str(h))}</th>" for h in head)
        body = "".join(
            "<tr>" + "".join(f"<td>{e('' if c is None else str(c))}</td>" for c in row) + "</tr>"
            for row in rows
        )
        return f"<table><tr>{th}</tr>{body}</table>"

    def fmt_time(t):
        return "" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))

    mv = r["model_version"] or {}
    val = r["validation_metrics"] or {}
    dis = r["disagreement"]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>napari-barl audit: {e(r['case'])}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:2px 8px}</style></head><body>",
        f"<h1>Audit report: {e(r['case'])}</h1><p>generated {e(r['generated'])}</p>",
        "<h2>Classes</h2>",
        table(
            [[c["index"], c["name"], "#" + "".join(f"{v:02x}" for v in c["rgb"])] for c in r["classes"]],
            ["index", "name", "colour"],
        ),
        "<h2>Annotated slices</h2>",
        table(
            [
                [
                    s["z"],
                    s["how"],
                    fmt_time(s.get("time")),
                    s.get("model_version"),
                    "" if s.get("dice_to_proposal") is None else f"{s['dice_to_proposal']:.3f}",
                    s.get("n_versions"),
                ]
                for s in r["annotated_slices"]
            ],
            ["slice", "how", "when", "model version", "Dice proposal vs final", "versions"],
        ),
        "<h2>Model</h2>",
        table(
            [
                ["version", mv.get("id")],
                ["parent", mv.get("parent")],
                ["checkpoint", (r["model"] or {}).get("workspace_path")],
                ["sha256", (r["model"] or {}).get("sha256")],
            ],
            ["field", "value"],
        ),
        "<h3>Hyper-parameters</h3>",
        f"<pre>{e(json.dumps(r['hyper_parameters'], indent=1))}</pre>",
        "<h2>Validation (frozen set)</h2>",
        table(
            [["mean Dice", val.get("mean_dice")], ["slices", val.get("n_slices")]]
            + [[f"Dice {k}", v] for k, v in (val.get("per_class") or {}).items()],
            ["metric", "value"],
        ),
        "<h2>Disagreement</h2>",
        table(
            [
                [
                    k,
                    None
                    if v is None
                    else (v if not isinstance(v, dict) else f"{v['score']:.4f} ({v['version']})"),
                ]
                for k, v in dis.items()
            ],
            ["when", "mean disagreement"],
        ),
        "<h2>Reproduce</h2><ol>",
        "".join(f"<li><code>{e(s)}</code></li>" for s in r["reproduce"]["steps"]),
        f"</ol><pre>{e(r['reproduce']['python'])}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)
