"""What a session will test, decided once at its start, before any test runs.

Resolving the device, the dtype and the model here (not lazily inside the first test) is what
turns a wrong option into one clear line at start-up instead of a screen of identical errors.
Nothing here knows pytest; the plugin turns `SessionSetupError` into a usage error.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, Optional

from pytest_ascend.errors import one_line
from pytest_ascend.settings import AscendSettings


class SessionSetupError(RuntimeError):
    """The session cannot start as configured; the message is one line for the user."""


@dataclass(frozen=True)
class SessionPlan:
    settings: AscendSettings
    cards: tuple  # DeviceUnderTest of each selected card (--ascend-devices), in order
    dtype: str
    dtype_source: str
    # Why the model cannot load onto one card, when only a split across the selected
    # cards holds it (the single-card tests skip with it); None when it fits.
    single_card_problem: Optional[str] = None
    golden: Optional[Any] = None  # numerics.golden.Golden of --ascend-golden, checked
    evalset: Optional[Any] = None  # accuracy.evalset.EvalSet of --ascend-eval, read and checked
    # box.placement.Placement: which card holds the model, the torchrun jobs and a launched
    # SGLang server; None where the model's config cannot be sized or makes no sense here.
    placement: Optional[Any] = None


    @property
    def device(self) -> Any:
        """The first selected card: the one that runs the model."""
        return self.cards[0]

    @cached_property
    def card_facts(self) -> list[dict]:
        """Each selected card's index, name, memory and bus id, read once per session."""
        return [card.describe() for card in self.cards]

    @property
    def smoke(self) -> bool:
        """A run on the built-in tiny model checks the stack, not the hardware's speed."""
        return self.settings.builtin_model

    @property
    def asserts_performance(self) -> bool:
        """Performance bounds hold a real model to account. On the built-in tiny model a
        smoke run asserts correctness and reports performance (its timings say nothing of
        the hardware, and a shared CPU moves them by 10x), unless --ascend-assert-perf.
        Never under a launch-blocking debug switch (`timing_caveat`): its timings measure the
        host's serialisation, not the device."""
        if self.timing_caveat is not None:
            return False
        return not self.smoke or self.settings.assert_perf

    @cached_property
    def timing_caveat(self) -> Optional[str]:
        """Why this session's timings do not measure the device (ASCEND_LAUNCH_BLOCKING=1),
        or None; the header warns with it and the history does not compare the run."""
        return self.device.platform.timing_caveat()

    @cached_property
    def compile_allowance_s(self) -> float:
        """Seconds a test may spend compiling operators on their first use (a 910A with JIT
        on: minutes), on top of its timeout; 0 where kernels are prebuilt."""
        return float(self.device.platform.first_use_compile_s(self.device))

    @property
    def device_chosen_by_auto(self) -> bool:
        return self.settings.device == "auto"

    @property
    def model_sensible_here(self) -> bool:
        """A real checkpoint on a CPU that auto fell back to is a mistake, not a test run:
        a 14B model would take hours. An explicit --ascend-device cpu is the user's call."""
        return self.smoke or not self.device.platform.is_host or not self.device_chosen_by_auto


def plan_session(settings: AscendSettings) -> SessionPlan:
    """Resolve cards, dtype and model for `settings`, or raise SessionSetupError."""
    cards = _open_cards(settings)
    device = cards[0]
    if settings.dtype is not None:
        dtype, dtype_source = settings.dtype, settings.source_of("dtype")
    else:
        dtype, dtype_source = device.platform.default_dtype, f"{device.kind} default"
    plan = SessionPlan(settings, cards, dtype, dtype_source)
    evalset = _check_eval(settings)  # a bad eval set or option pair is said before all else
    plan = replace(plan, single_card_problem=_check_models(plan), golden=_check_golden(settings),
                   evalset=evalset)
    return _with_placement(plan)


def _with_placement(plan: SessionPlan) -> SessionPlan:
    """The plan with its placement (box.placement) made from the selected cards' free memory
    now, and the single-card tests' skip reason where card 0 cannot hold the model with its
    headroom. Without a sizeable config the launched server keeps SGLang's own sizing, as
    it does on a device without memory of its own: there the "card" is the host's RAM,
    shared and moving, so the plan reports the model and gates nothing."""
    from pytest_ascend.box.placement import CardMemory, model_config, plan_placement

    if not plan.model_sensible_here:
        return plan
    try:
        config = model_config(plan.settings.model)
    except ValueError:
        return plan
    memory = [(card, card.memory()) for card in plan.cards]
    cards = [CardMemory(card.index, snap.total, snap.total if snap.free is None else snap.free)
             for card, snap in memory]
    settings, platform = plan.settings, plan.device.platform
    placement = plan_placement(
        cards, config, plan.dtype, torchrun=len(cards) >= 2 and platform.one_rank_per_card,
        sglang=bool(platform.has_device_memory and settings.sglang_launch
                    and not settings.sglang_url))
    problem = plan.single_card_problem
    if problem is None and platform.has_device_memory:
        problem = placement.single_card_problem(config, plan.dtype)
    return replace(plan, placement=placement, single_card_problem=problem)


def _open_cards(settings: AscendSettings) -> tuple:
    try:
        import torch  # noqa: F401  (every platform needs it; a broken install says so here)
    except Exception as exc:
        raise SessionSetupError(
            f"import torch failed: {one_line(exc)} (if torch_npu is installed "
            f"without a working CANN, source set_env.sh or set TORCH_DEVICE_BACKEND_AUTOLOAD=0)"
        ) from exc
    from pytest_ascend.platforms import DeviceUnavailable, open_cards

    try:
        return open_cards(settings.device, settings.devices)
    except DeviceUnavailable as exc:
        raise SessionSetupError(str(exc)) from exc


def _check_models(plan: SessionPlan) -> Optional[str]:
    from pytest_ascend.model.loading import (
        ModelSpecError,
        check_buildable,
        check_fits,
        check_model_spec,
    )

    settings = plan.settings
    try:
        info = check_model_spec(settings.model, "--ascend-model")
        check_buildable(settings.model, settings.cache)
        if settings.draft_model is not None:
            check_model_spec(settings.draft_model, "--ascend-draft-model", settings.model)
            check_buildable(settings.draft_model, settings.cache, settings.model)
        if info is not None and plan.model_sensible_here:
            free = plan.device.memory().free
            return check_fits(info, plan.dtype, free, str(plan.device.torch_device),
                              len(plan.cards))
    except ModelSpecError as exc:
        raise SessionSetupError(str(exc)) from exc
    return None


def _check_eval(settings: AscendSettings) -> Optional[Any]:
    """The --ascend-eval set, read and checked whole: a bad line stops the session in one
    line naming it, before any model loads."""
    if settings.eval is None:
        if settings.golden_record is not None:
            raise SessionSetupError(f"--ascend-golden-record={settings.golden_record} records "
                                    f"the answers to an eval set: give --ascend-eval too "
                                    f"(`arithmetic` for the shipped set)")
        return None
    from pytest_ascend.accuracy.evalset import EvalSetError, load_eval_set

    if settings.golden_record is not None and settings.golden is not None:
        raise SessionSetupError("--ascend-golden-record and --ascend-golden: give one; a "
                                "session either records the answers or compares with them")
    try:
        return load_eval_set(str(settings.eval))
    except EvalSetError as exc:
        raise SessionSetupError(str(exc)) from None


def _check_golden(settings: AscendSettings) -> Optional[Any]:
    """The --ascend-golden golden, read whole and checked against the session's model: a
    damaged golden, or one of another model, stops the session in one line. A directory
    that holds accuracy records alone has no token golden (None), and is used for those."""
    if settings.golden is None:
        return None
    from pytest_ascend.numerics.golden import MANIFEST

    if not (settings.golden / MANIFEST).exists() and (settings.golden / "accuracy").is_dir():
        return None
    from pytest_ascend.model.loading import ModelSpecError, resolve_model_dir
    from pytest_ascend.numerics.fingerprint import model_fingerprint
    from pytest_ascend.numerics.golden import GoldenError, check_model, read_golden

    try:
        golden = read_golden(settings.golden)
        model_dir = resolve_model_dir(settings.model, settings.cache)
        check_model(golden, model_fingerprint(model_dir, settings.cache),
                    f"--ascend-model {settings.model}")
    except (GoldenError, ModelSpecError) as exc:
        raise SessionSetupError(f"--ascend-golden={settings.golden}: {exc}") from exc
    return golden


def skip_reason(
    plan: SessionPlan, *, npu: bool, slow: Optional[dict], sglang: bool
) -> Optional[str]:
    """Why a test with these markers cannot run in this session, naming the enabling option."""
    if npu and not plan.model_sensible_here:
        return (
            f"no accelerator found (--ascend-device auto chose {plan.device.kind}) for the real "
            f"checkpoint "
            f"{plan.settings.model}: pass --ascend-device cpu to run it on the CPU anyway"
        )
    if slow is not None and not plan.settings.run_slow:
        if not (slow.get("except_smoke") and plan.smoke):
            return "slow test: enable with --ascend-run-slow (or PYTEST_ASCEND_RUN_SLOW=1)"
    if sglang and not (plan.settings.sglang_url or plan.settings.sglang_launch):
        return "needs a live SGLang server: pass --sglang-url URL or --sglang-launch"
    if sglang and plan.settings.sglang_launch:
        unsupported = plan.device.platform.sglang_unsupported(plan.device)
        if unsupported is not None:
            return f"--sglang-launch: {unsupported}"
    if sglang and plan.placement is not None and "sglang" in plan.placement.skipped:
        return f"--sglang-launch: {plan.placement.skipped['sglang']}"
    return None
