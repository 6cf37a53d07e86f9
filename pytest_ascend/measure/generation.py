"""Timed greedy generation: TTFT, TPOT, ITL, E2E and tokens/s, measured on the device.

The seed's numbers were wall-clock time around `model.generate` with no synchronization, no
warm-up and no split between prefill and decode. Here every phase is bracketed by the device
timer (`DeviceUnderTest.timer()`: synchronize, events on npu/cuda, host clock on cpu), the
first run of every batch shape is a discarded warm-up, and decoding is the model's own
forward with its own KV cache: the calls `generate` makes, with the same cache object, the
same position ids and `logits_to_keep=1`, minus `generate`'s per-step Python bookkeeping
(logits processors, stopping criteria), which is not what a serving engine pays either.
Every run produces exactly `max_new_tokens` tokens (eos is ignored) so every run does the
same work. docs/metrics.md defines each metric.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import torch

from pytest_ascend.measure.stats import Percentiles, median
from pytest_ascend.model.hf_compat import forward_kwargs, output_cache


@dataclass(frozen=True)
class BatchRun:
    """One measured operation: a batch prefilled together and decoded step by step.

    `ttft_ms` covers the prefill forward and the choice of the first token; `itl_ms[i]` is
    decode step i+1 (one forward over the whole batch plus the choice of the next tokens);
    `e2e_ms` brackets everything from the prefill to the last token.
    """

    batch_index: int
    prompt_indices: tuple[int, ...]
    prompt_tokens: tuple[int, ...]  # per request, without padding
    context_tokens: int  # padded prompt length: the positions each sequence's KV cache starts with
    ttft_ms: float
    itl_ms: tuple[float, ...]
    e2e_ms: float
    tokens: tuple[tuple[int, ...], ...]

    @property
    def batch_size(self) -> int:
        return len(self.prompt_indices)

    @property
    def output_tokens(self) -> int:
        return len(self.itl_ms) + 1

    @property
    def decode_ms(self) -> float:
        return sum(self.itl_ms)


@dataclass(frozen=True)
class RequestRecord:
    """One request's view of the batch it ran in."""

    prompt_index: int
    batch_size: int
    prompt_tokens: int
    output_tokens: int
    ttft_ms: float
    tpot_ms: float  # decode time / (output_tokens - 1); NaN for a single output token
    e2e_ms: float
    tokens: tuple[int, ...]

    @property
    def output_tokens_per_s(self) -> float:
        return self.output_tokens / (self.e2e_ms / 1e3)


@dataclass(frozen=True)
class GenerationSummary:
    """Percentiles over requests and repetitions; the figures a benchmark reports."""

    batch_size: int
    requests: int
    runs: int
    prompt_tokens: float  # mean over requests
    output_tokens: int  # per request
    ttft_ms: Percentiles
    tpot_ms: Percentiles
    itl_ms: Percentiles  # over every decode step of every run
    e2e_ms: Percentiles
    output_tokens_per_s: float  # per request: output_tokens / P50 E2E
    throughput_tokens_per_s: float  # batch: batch_size * output_tokens / P50 E2E

    def metrics(self) -> dict[str, float]:
        """Flat, JSON-ready figures under the names benchmark extra_info uses."""
        out: dict[str, float] = {
            "ttft_ms": self.ttft_ms.p50,
            "tpot_ms": self.tpot_ms.p50,
            "itl_p95_ms": self.itl_ms.p95,
            "e2e_ms": self.e2e_ms.p50,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "output_tokens_per_s": self.output_tokens_per_s,
            "batch_size": self.batch_size,
            "throughput_tokens_per_s": self.throughput_tokens_per_s,
            "requests": self.requests,
        }
        for name in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
            stats: Percentiles = getattr(self, name)
            base = name[: -len("_ms")]
            out.update({f"{base}_p50_ms": stats.p50, f"{base}_p95_ms": stats.p95,
                        f"{base}_p99_ms": stats.p99})
        return {key: _finite_or_none(value) for key, value in out.items()}


@dataclass
class GenerationResult:
    """Every measured run, in order; per-request records and summaries derive from them."""

    runs: list[BatchRun] = field(default_factory=list)

    @property
    def requests(self) -> list[RequestRecord]:
        return [
            RequestRecord(
                prompt_index=index,
                batch_size=run.batch_size,
                prompt_tokens=run.prompt_tokens[row],
                output_tokens=run.output_tokens,
                ttft_ms=run.ttft_ms,
                tpot_ms=run.decode_ms / (run.output_tokens - 1) if run.itl_ms else math.nan,
                e2e_ms=run.e2e_ms,
                tokens=run.tokens[row],
            )
            for run in self.runs
            for row, index in enumerate(run.prompt_indices)
        ]

    def summary(self) -> GenerationSummary:
        if not self.runs:
            raise ValueError("no measured runs to summarise")
        requests = self.requests
        e2e = Percentiles.of([r.e2e_ms for r in requests])
        output_tokens = self.runs[0].output_tokens
        batch_size = self.runs[0].batch_size
        per_request_rate = output_tokens / (e2e.p50 / 1e3)
        return GenerationSummary(
            batch_size=batch_size,
            requests=len(requests),
            runs=len(self.runs),
            prompt_tokens=sum(r.prompt_tokens for r in requests) / len(requests),
            output_tokens=output_tokens,
            ttft_ms=Percentiles.of([r.ttft_ms for r in requests]),
            tpot_ms=Percentiles.of([r.tpot_ms for r in requests if not math.isnan(r.tpot_ms)]),
            itl_ms=Percentiles.of([gap for run in self.runs for gap in run.itl_ms]),
            e2e_ms=e2e,
            output_tokens_per_s=per_request_rate,
            throughput_tokens_per_s=batch_size * per_request_rate,
        )

    def round_figures(self) -> dict[str, list[float]]:
        """Every measured run's own TTFT, TPOT and throughputs, in order: the per-round
        values a history judges each metric's noise by (whole-round times understate TTFT's,
        for one)."""
        return {
            "ttft_ms": [run.ttft_ms for run in self.runs],
            "tpot_ms": [run.decode_ms / (run.output_tokens - 1) for run in self.runs
                        if run.itl_ms],
            "output_tokens_per_s": [run.output_tokens / (run.e2e_ms / 1e3) for run in self.runs],
            "throughput_tokens_per_s": [run.batch_size * run.output_tokens / (run.e2e_ms / 1e3)
                                        for run in self.runs],
        }

    def pass_throughputs(self, batches_per_pass: int) -> list[float]:
        """Output tokens per second of each pass over the prompts: consecutive groups of
        `batches_per_pass` runs, their tokens over their summed E2E time."""
        passes = [self.runs[i:i + batches_per_pass]
                  for i in range(0, len(self.runs), batches_per_pass)]
        return [sum(run.batch_size * run.output_tokens for run in group)
                / (sum(run.e2e_ms for run in group) / 1e3) for group in passes]

    def decay_ratios(self, window: int) -> list[float]:
        """Per run: the median of its last `window` decode steps over its first `window`."""
        if not self.runs or any(len(run.itl_ms) < 2 * window for run in self.runs):
            raise ValueError(f"decay needs at least {2 * window} decode steps per run")
        return [median(run.itl_ms[-window:]) / median(run.itl_ms[:window]) for run in self.runs]


class GenerationMeasurer:
    """Greedy generation of `prompts` in batches of `batch_size`, one timed batch per call.

    Prompts are tokenized and placed on the device once, up front: the timed region is the
    model's work, not the tokenizer's. A batch larger than the prompt list repeats prompts.
    Use `warm_up()` first, then `run_once()` per measured operation (what
    `benchmark.pedantic` calls a round), then `result`.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        prompts: Sequence[str],
        *,
        max_new_tokens: int,
        device: Any,
        batch_size: int = 1,
    ) -> None:
        if not prompts:
            raise ValueError("measure_generation needs at least one prompt")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.result = GenerationResult()
        count = -(-len(prompts) // batch_size)
        self._batches = [
            tuple((b * batch_size + j) % len(prompts) for j in range(batch_size))
            for b in range(count)
        ]
        encoded = [_encode(tokenizer, [prompts[i] for i in b], model) for b in self._batches]
        self._prompt_tokens = [lengths for *_, lengths in encoded]
        self._inputs = [tensors for *tensors, _ in encoded]
        self._next = 0

    @property
    def batches(self) -> int:
        return len(self._batches)

    def warm_up(self) -> None:
        """Run every batch shape once, unrecorded: first calls pay for kernel selection,
        graph compilation (npu) and allocator growth, which no later request pays."""
        for index in range(len(self._batches)):
            self._generate(index)

    def run_once(self) -> BatchRun:
        """Generate the next batch (round-robin) and record it."""
        run = self._generate(self._next)
        self._next = (self._next + 1) % len(self._batches)
        self.result.runs.append(run)
        return run

    def _generate(self, index: int) -> BatchRun:
        ids, mask, positions = self._inputs[index]
        model, timer = self.model, self.device.timer
        steps: list[Any] = []
        padded = mask is not None
        ones = mask.new_ones((mask.shape[0], 1)) if padded else None
        with torch.inference_mode(), timer() as e2e:
            with timer() as first:
                out = model(input_ids=ids, attention_mask=mask, position_ids=positions,
                            **forward_kwargs(model))
                token = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
            cache = output_cache(out)
            chosen = [token]
            for _ in range(self.max_new_tokens - 1):
                with timer() as step:
                    if padded:
                        mask = torch.cat([mask, ones], dim=1)
                        positions = positions[:, -1:] + 1
                    out = model(input_ids=token, attention_mask=mask, position_ids=positions,
                                **forward_kwargs(model, cache))
                    cache = output_cache(out)
                    token = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
                chosen.append(token)
                steps.append(step)
        tokens = torch.cat(chosen, dim=1).tolist()
        return BatchRun(
            batch_index=index,
            prompt_indices=self._batches[index],
            prompt_tokens=self._prompt_tokens[index],
            context_tokens=int(ids.shape[1]),
            ttft_ms=first.elapsed_ms,
            itl_ms=tuple(s.elapsed_ms for s in steps),
            e2e_ms=e2e.elapsed_ms,
            tokens=tuple(tuple(row) for row in tokens),
        )


def measure_generation(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    device: Any,
    batch_size: int = 1,
    repetitions: int = 3,
    progress: Optional[Callable[[BatchRun], None]] = None,
) -> GenerationResult:
    """Warm up, then time `repetitions` passes over all `prompts`; see GenerationMeasurer."""
    measurer = GenerationMeasurer(
        model, tokenizer, prompts, max_new_tokens=max_new_tokens, device=device,
        batch_size=batch_size,
    )
    measurer.warm_up()
    for _ in range(repetitions * measurer.batches):
        run = measurer.run_once()
        if progress is not None:
            progress(run)
    return measurer.result


def bare_decode_ms(model: Any, prompt_ids: torch.Tensor, steps: int, device: Any) -> list[float]:
    """Per-step times of the plainest decode loop there is: forward, argmax, synchronize,
    host clock. The reference the suite's own timing is checked against (harness overhead)."""
    times = []
    with torch.inference_mode():
        out = model(input_ids=prompt_ids, **forward_kwargs(model))
        token = out.logits[:, -1:].argmax(dim=-1)
        device.synchronize()
        for _ in range(steps):
            start = time.perf_counter()
            out = model(input_ids=token, **forward_kwargs(model, output_cache(out)))
            token = out.logits[:, -1:].argmax(dim=-1)
            device.synchronize()
            times.append((time.perf_counter() - start) * 1e3)
    return times


def _encode(tokenizer: Any, texts: list[str], model: Any) -> tuple[Any, ...]:
    """Left-padded ids, the mask and the position ids `generate` derives from the mask, and
    each prompt's unpadded length.

    Without padding, mask and positions are None: the model then takes every position as
    valid and numbers them from its cache, which gives the same values without building and
    growing a mask each step.
    """
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    ids = enc["input_ids"].to(model.device)
    lengths = tuple(int(n) for n in enc["attention_mask"].sum(dim=1).tolist())
    if all(n == ids.shape[1] for n in lengths):
        return ids, None, None, lengths
    mask = enc["attention_mask"].to(model.device)
    positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)
    return ids, mask, positions, lengths


def _finite_or_none(value: float) -> Optional[float]:
    """JSON has no NaN: an undefined figure (TPOT of a one-token answer) is reported as null."""
    return None if isinstance(value, float) and math.isnan(value) else value


def consistency_problems(result: GenerationResult, max_new_tokens: int) -> list[str]:
    """What in a measured result contradicts how it was measured; empty when it is sound.

    Every timed region is positive, every run produced exactly `max_new_tokens` tokens, and
    the E2E region (which brackets the prefill and every step) is at least their sum.
    """
    problems = []
    for n, run in enumerate(result.runs):
        where = f"run {n} (batch {run.batch_index})"
        if run.output_tokens != max_new_tokens:
            problems.append(f"{where}: {run.output_tokens} tokens, expected {max_new_tokens}")
        if not run.ttft_ms > 0 or not all(gap > 0 for gap in run.itl_ms):
            problems.append(f"{where}: a non-positive prefill or decode-step time")
        slack = 1e-3 * (len(run.itl_ms) + 2)  # event timestamps resolve to ~1 us
        if run.e2e_ms + slack < run.ttft_ms + run.decode_ms:
            problems.append(
                f"{where}: E2E {run.e2e_ms:.3f} ms < TTFT + decode "
                f"{run.ttft_ms + run.decode_ms:.3f} ms"
            )
    return problems
