"""One-line progress summaries: what a long measurement prints as each configuration finishes,
so a run on a 14B model never looks like a hang."""

from __future__ import annotations

from typing import Any


def generation_line(label: str, metrics: dict[str, Any], seconds: float) -> str:
    """One progress line for a measured configuration: its headline figures and duration."""
    parts = [f"{label}: TTFT {_num(metrics.get('ttft_ms'))} ms",
             f"TPOT {_num(metrics.get('tpot_ms'))} ms",
             f"{_num(metrics.get('throughput_tokens_per_s'))} tok/s"]
    if metrics.get("roofline_fraction") is not None:
        parts.append(f"roofline {metrics['roofline_fraction']:.2f}")
    requests = metrics.get("requests")
    plural = "" if requests == 1 else "s"
    return ", ".join(parts) + f" ({requests} request{plural}, {seconds:.1f} s)"


def limits_line(limits: Any) -> str:
    report = limits.report()
    line = (f"device limits: copy {report['bandwidth_gb_s']:.1f} GB/s, "
            f"{limits.dtype} matmul {report['matmul_tflops']:.2f} TFLOP/s")
    sheet = report["datasheet"]
    if sheet is None:
        return line + " (no datasheet figures for this device)"
    ratios = [f"{name} {value:.0%}" for name, value in (
        ("copy", report["bandwidth_vs_datasheet"]), ("matmul", report["matmul_vs_datasheet"]))
        if value is not None]
    return line + f" ({', '.join(ratios) or 'no figures'} of {sheet['model']} datasheet)"


def _num(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"
