"""One-line progress summaries: what a long measurement prints as each configuration finishes,
so a run on a 14B model never looks like a hang."""

from __future__ import annotations

from typing import Any, Optional

ETA_EVERY_S = 60.0  # a session prints where it stands at most this often


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


def duration_text(seconds: float) -> str:
    """3 s, 4m05s, 1h02m: the precision a person planning around a run needs."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def eta_line(done: int, total: int, elapsed_s: float) -> Optional[str]:
    """Where a session of `total` suite tests stands after `done` of them, with the time left
    at the pace so far (the tests are not alike, so it is an estimate and says so)."""
    if total <= 0 or done <= 0:
        return None
    left = (total - done) * elapsed_s / done
    return (f"{done}/{total} suite tests in {duration_text(elapsed_s)}; about "
            f"{duration_text(left)} left at this pace")


def _num(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"
