"""Markdown tables of a GPU-check results file (``report.py`` renders them into docs/benchmarks.md)."""

from __future__ import annotations

from benchmarks import common

__all__ = ["render_table"]


def render_table(data: dict) -> str:
    """Markdown tables of the check's results."""
    out = []
    m = data.get("methods")
    if m and m.get("methods"):
        rows = [[k, f"{v['its_per_s']:.2f}", "n/a" if v["peak_mib"] is None else f"{v['peak_mib']:.0f}",
                 "yes" if v["amp"] else "no"] for k, v in m["methods"].items()]
        out.append(f"### Training at the full preset (patch {'x'.join(map(str, m['patch_zyx']))}, batch "
                   f"{m['batch'][0]}+{m['batch'][1]}, base {m['base_channels']})\n\n"
                   + common.markdown_table(["method", "iterations/s", "peak GPU MiB", "AMP"], rows)
                   + (f"\n\nBARL/CPS time per iteration: {m['barl/cps_time']:.2f}" if "barl/cps_time" in m else ""))
    p = data.get("predict")
    if p and "seconds" in p:
        out.append(common.markdown_table(
            ["prediction", "seconds", "peak GPU MiB"],
            [[f"{'x'.join(map(str, p['size_zyx']))}, window {'x'.join(map(str, p['window_zyx']))}, base "
              f"{p['base_channels']}, overlap {p['overlap']}, batch {p['sw_batch']}", f"{p['seconds']:.1f}",
              "n/a" if p["peak_mib"] is None else f"{p['peak_mib']:.0f}"]]))
    r = data.get("release")
    if r:
        def fmt(v):
            return "n/a" if v is None else f"{v:.0f}"
        out.append(common.markdown_table(
            ["GPU memory release", "free MiB", "job status"],
            [["before", fmt(r.get("baseline_free_mib")), ""],
             ["after a training child ended", fmt(r.get("after_done_free_mib")), r.get("done_status", "?")],
             ["after a training child was cancelled", fmt(r.get("after_cancel_free_mib")), r.get("cancel_status", "?")],
             ["back to baseline", {True: "yes", False: "NO", None: "n/a (CPU)"}[r.get("returned")], ""]]))
    o = data.get("oom")
    if o:
        out.append(common.markdown_table(
            ["out of memory", "result"],
            [["kind", "simulated (CPU)" if o.get("simulated") else f"real CUDA OOM (memory fraction "
                                                                    f"{o.get('memory_fraction')})"],
             ["training", f"{o.get('train')}; patch {o.get('patch_before')} -> {o.get('patch_after', '?')}, "
                          f"batch {o.get('batch_before')} -> {o.get('batch_after', '?')}"],
             ["prediction (batched windows)", o.get("predict", "n/a")]]))
    la = data.get("la")
    if la:
        if "skipped" in la:
            out.append(f"Left Atrium run: skipped ({la['skipped']}).")
        else:
            out.append(common.markdown_table(
                ["Left Atrium run", "value"],
                [["cases (labelled)", f"{la['cases']} ({la['labelled']})"], ["iterations", str(la["iterations"])],
                 ["loss, first / last tenth", f"{la['loss_first']:.3f} / {la['loss_last']:.3f}"],
                 ["loss went down", "yes" if la["loss_went_down"] else "NO"], ["seconds", f"{la['seconds']:.0f}"]]))
    return "\n\n".join(out) if out else "_No results._"
