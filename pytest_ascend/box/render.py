"""The box's figures for people: a cards x metrics table, the link matrix as text and as a
heat map, and both as JSON next to them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from pytest_ascend.box.card_checks import CARD_METRICS
from pytest_ascend.box.sweep import CardSweep, LinkMatrix

UNITS = {"h2d_gb_s": "H2D GB/s", "d2h_gb_s": "D2H GB/s", "d2d_gb_s": "on-card GB/s",
         "matmul_tflops": "matmul TFLOPS"}


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    def line(cells: list[str]) -> str:
        return "  ".join(cell.rjust(width) for cell, width in zip(cells, widths))
    return [line(header), *(line(row) for row in rows)]


def _number(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.3g}" if value < 1000 else f"{value:.0f}"


def card_table(sweep: CardSweep, flagged: set[tuple[str, str]] = frozenset()) -> list[str]:
    """One row per card, one column per metric; a figure below its siblings is marked `!`."""
    rows = []
    for index, values in sorted(sweep.figures.items()):
        cells = [f"card {index}"]
        for metric in CARD_METRICS:
            mark = "!" if (f"card {index}", metric) in flagged else ""
            cells.append(_number(values.get(metric)) + mark)
        rows.append(cells)
    return _table(["", *(UNITS[m] for m in CARD_METRICS)], rows)


def link_table(matrix: LinkMatrix, flagged: set[tuple[int, int]] = frozenset()) -> list[str]:
    """GB/s from the row's card to the column's card; `!` marks a slow link."""
    rows = []
    for source, values in zip(matrix.cards, matrix.rows()):
        rows.append([f"from {source}"] + [
            "." if value is None else _number(value) + ("!" if (source, target) in flagged
                                                          else "")
            for target, value in zip(matrix.cards, values)])
    return _table(["GB/s", *(f"to {c}" for c in matrix.cards)], rows)


def write_box_json(path: Path, sweep: Optional[CardSweep], matrix: Optional[LinkMatrix]) -> None:
    data: dict = {}
    if sweep is not None:
        data["cards"] = {"dtype": sweep.dtype, "copy_bytes": sweep.copy_bytes,
                         "matmul_size": sweep.matmul_size, "rounds": sweep.rounds,
                         "figures": {str(k): v for k, v in sweep.figures.items()}}
    if matrix is not None:
        data["links"] = {"cards": list(matrix.cards), "bytes": matrix.nbytes,
                         "rounds": matrix.rounds, "gb_s": matrix.rows()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def write_link_heatmap(path: Path, matrix: LinkMatrix, title: str) -> None:
    """A PNG heat map of the link matrix, each cell labelled with its GB/s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = matrix.rows()
    values = [[float("nan") if v is None else v for v in row] for row in rows]
    size = 1.0 + 0.7 * len(matrix.cards)
    figure, axes = plt.subplots(figsize=(size + 1.5, size))
    image = axes.imshow(values, cmap="viridis")
    ticks = range(len(matrix.cards))
    axes.set_xticks(ticks, [str(c) for c in matrix.cards])
    axes.set_yticks(ticks, [str(c) for c in matrix.cards])
    axes.set_xlabel("to card")
    axes.set_ylabel("from card")
    axes.set_title(title)
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            if value is not None:
                axes.text(j, i, _number(value), ha="center", va="center", fontsize=8,
                          color="white")
    figure.colorbar(image, ax=axes, label="GB/s")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
