"""Markdown tables and the plot of a speed results file (``report.py`` renders it too)."""

from __future__ import annotations

from pathlib import Path

from benchmarks import common

__all__ = ["render_table", "plot"]


def render_table(data: dict) -> str:
    """Markdown tables of whatever parts the results hold."""
    out = []
    tr = data.get("train")
    if tr:
        sup = tr["methods"].get("supervised", {}).get("median_s")
        rows = [[m, f"{v['median_s'] * 1000:.1f}", f"{v['median_s'] / sup:.2f}" if sup else "n/a"]
                for m, v in tr["methods"].items()]
        out.append(f"### Training iteration time (patch {'x'.join(map(str, tr['patch_zyx']))}, base "
                   f"{tr['base_channels']}, batch {tr['batch_labeled']}+{tr['batch_unlabeled']})\n\n"
                   + common.markdown_table(["method", "ms / iteration (median)", "x supervised"], rows))
        if tr.get("ratios"):
            out.append(common.markdown_table(["ratio", "value"], [[k, f"{v:.2f}"] for k, v in tr["ratios"].items()]))
    inf = data.get("inference")
    if inf and "precisions" in inf:
        rows = [[prec, f"{r['barl_core']['median_s']:.2f}", f"{r['monai']['median_s']:.2f}",
                 f"{r['ratio_barl_core/monai']:.2f}", f"{1 / r['ratio_barl_core/monai']:.2f}"]
                for prec, r in inf["precisions"].items()]
        out.append(f"### Sliding-window inference ({'x'.join(map(str, inf['volume_zyx']))} volume, window "
                   f"{'x'.join(map(str, inf['window_zyx']))}, overlap {inf['overlap']}, gaussian, "
                   f"{inf['repeats']} interleaved rounds)\n\n"
                   + common.markdown_table(["network precision (both)", "barl_core s (median)", "MONAI s (median)",
                                            "time ours / MONAI", "speed ours / MONAI (goal >= 1.0)"], rows))
    elif inf and "barl_core" in inf:  # results of the older format
        rows = [[k, f"{inf[k]['median_s']:.3f}"] for k in ("barl_core", "monai")]
        rows.append(["barl_core / monai", f"{inf['ratio_barl_core/monai']:.2f}"])
        out.append(f"### Sliding-window inference ({'x'.join(map(str, inf['volume_zyx']))} volume, window "
                   f"{'x'.join(map(str, inf['window_zyx']))}, overlap {inf['overlap']}, gaussian)\n\n"
                   + common.markdown_table(["implementation", "seconds (median)"], rows))
    opt = data.get("options")
    if opt and opt.get("options"):
        rows = [[k, f"{v['median_s'] * 1000:.0f}", f"{v['speedup']:.2f}", f"{v['max_softmax_change']:.4f}"]
                for k, v in opt["options"].items()]
        note = ""
        if "compile_s" in opt:
            note = f"\n\ntorch.compile took {opt['compile_s']:.0f} s to compile before its first window."
        elif "compile_error" in opt:
            note = f"\n\ntorch.compile failed: {opt['compile_error']}"
        out.append(f"### Inference options, one {'x'.join(map(str, opt['window_zyx']))} window, both branches, base "
                   f"{opt['base_channels']}\n\n"
                   + common.markdown_table(["option", "ms (median)", "speed-up vs no_grad", "max softmax change"],
                                           rows) + note)
    app = data.get("interactive")
    if app and "whole_s" in app:
        rows = [["current slice's proposal (predict_slab)", f"{app['slice_s']:.1f}", "<= 5"],
                ["whole case (predict_volume)", f"{app['whole_s']:.1f}", "<= 20"],
                ["whole case, float32 network", f"{app['whole_float32_s']:.1f}", ""],
                ["whole case as one window (no overlap)", f"{app.get('whole_one_window_s', float('nan')):.1f}", ""],
                ["prediction job, child process start to files written", f"{app['job_s']:.1f}", ""]]
        out.append(f"### The app's phantom ({'x'.join(map(str, app['volume_zyx']))}, window "
                   f"{'x'.join(map(str, app['patch_zyx']))}, base {app['base_channels']}, overlap {app['overlap']}, "
                   f"BARL trained {app['train_iterations']} iterations)\n\n"
                   + common.markdown_table(["what the radiologist waits for", "seconds", "goal s"], rows)
                   + "\n\n" + common.markdown_table(["quality check", "value"], [
                       ["slice from predict_slab = whole-volume pass (voxels)", f"{app['slice_label_agreement']:.4f}"],
                       ["labels, auto precision = float32 (voxels)", f"{app['auto_vs_float32_label_agreement']:.4f}"],
                       ["share of the whole case spent in the network, auto / float32",
                        f"{app.get('network_fraction', float('nan')):.2f} / "
                        f"{app.get('network_fraction_float32', float('nan')):.2f}"],
                       ["foreground Dice vs truth, auto / float32",
                        f"{app['dice_auto']:.3f} / {app['dice_float32']:.3f}"],
                       ["one window = default windows (voxels); its Dice",
                        f"{app.get('one_window_label_agreement', float('nan')):.4f}; "
                        f"{app.get('dice_one_window', float('nan')):.3f}"]]))
    big = data.get("large")
    if big and "predict_seconds" in big:
        f32 = big["float32_bytes"]
        out.append(f"### A {'x'.join(map(str, big['size_zyx']))} CBCT phantom (0.3 mm) at the working spacing "
                   f"{big['working_spacing']} mm (window {'x'.join(map(str, big['window_zyx']))}, overlap "
                   f"{big['overlap']}, base {big['base_channels']})\n\n"
                   + common.markdown_table(["seconds (goal <= 180)", "peak RSS MiB",
                                            "(peak - model process) / float32 (goal <= 2.5)"],
                                           [[f"{big['predict_seconds']:.0f}", f"{big['peak_rss_bytes'] / 2**20:.0f}",
                                             f"{(big['peak_rss_bytes'] - big['rss_after_model_bytes']) / f32:.2f}"]]))
    elif big:
        out.append(f"### Large volume\n\n{big.get('error', 'not measured')}")
    mem = data.get("memory")
    if mem and mem.get("volumes"):
        rows = []
        for v in mem["volumes"]:
            if "error" in v:
                rows.append(["x".join(map(str, v["size_zyx"])), v["error"], "", "", "", "", ""])
                continue
            above = v["peak_rss_bytes"] - v["rss_with_volume_bytes"]
            rows.append(["x".join(map(str, v["size_zyx"])), f"{v['float32_bytes'] / 2**20:.0f}",
                         f"{v['peak_rss_bytes'] / 2**20:.0f}", f"{v['peak_above_model_over_float32']:.2f}",
                         f"{above / 2**20:.0f}", f"{(v['estimate_bytes'] - v['input_bytes']) / 2**20:.0f}",
                         f"{v['predict_seconds']:.0f}"])
        v0 = next((v for v in mem["volumes"] if "error" not in v), {})
        out.append(f"### Peak memory, predicting CBCT phantoms with disagreement (window "
                   f"{'x'.join(map(str, mem['window_zyx']))}, overlap {mem['overlap']}, "
                   f"{v0.get('num_classes', '?')} classes, base width {v0.get('base_channels', '?')}, "
                   f"peak from {v0.get('peak_source', '?')})\n\n"
                   + common.markdown_table(
                       ["volume (z x y x)", "float32 MiB", "peak RSS MiB", "(peak - model process) / float32",
                        "added by prediction MiB", "estimate of it MiB", "seconds"], rows))
    elif mem:
        out.append(f"### Peak memory\n\n{mem.get('error', 'not measured')}")
    gui = data.get("gui")
    if gui and "training" in gui:
        rows = [[phase, str(gui[phase]["ticks"]), f"{gui[phase]['median_gap_ms']:.1f}",
                 f"{gui[phase]['p99_gap_ms']:.1f}", f"{gui[phase]['max_gap_ms']:.1f}"]
                for phase in ("idle", "training")]
        out.append(f"### GUI event loop (10 ms heartbeat, Qt {gui['qt_platform']}), training job: "
                   f"{gui['job_status']}\n\n"
                   + common.markdown_table(["phase", "heartbeats", "median gap ms", "p99 gap ms", "max gap ms"], rows))
    elif gui:
        out.append(f"### GUI event loop\n\nskipped: {gui.get('skipped') or gui.get('error')}")
    return "\n\n".join(out)


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = data.get("train")
    if not tr:
        return
    methods = list(tr["methods"])
    vals = [tr["methods"][m]["median_s"] * 1000 for m in methods]
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    bars = ax.bar(methods, vals, color=[f"C{i}" for i in range(len(methods))])
    for b, v in zip(bars, vals, strict=False):
        ax.text(b.get_x() + b.get_width() / 2, v, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("ms per training iteration (median)")
    ax.set_title(f"patch {'x'.join(map(str, tr['patch_zyx']))}, base {tr['base_channels']}, "
                 f"batch {tr['batch_labeled']}+{tr['batch_unlabeled']}")
    common.save_figure(fig, path)
