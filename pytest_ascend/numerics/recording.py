"""`pytest-ascend golden record`: load a model on a device and write its golden."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from pytest_ascend.numerics.golden import MANIFEST, Golden, GoldenError, record_golden, write_golden


class RecordingError(RuntimeError):
    """The golden cannot be recorded as asked; the message is one line for the user."""


def record_golden_dir(model_spec: str, out_dir: Path, *, device: str = "auto",
                      dtype: str = "float32", cache_dir: Optional[Path] = None,
                      trust_remote_code: bool = False, force: bool = False,
                      progress: Callable[[str], None] = lambda _: None) -> Golden:
    """Record the golden of `model_spec` in `dtype` on `device` into `out_dir`."""
    from pytest_ascend.model.loading import ModelLoadError, ModelSpecError, load_under_test
    from pytest_ascend.model.tiny import default_cache_dir, is_builtin_spec
    from pytest_ascend.numerics.fingerprint import model_fingerprint
    from pytest_ascend.numerics.perplexity import text_perplexity
    from pytest_ascend.platforms import DeviceUnavailable, open_cards
    from pytest_ascend.platforms.selection import parse_card_selection
    from pytest_ascend.reports.environment import gather_environment

    if (Path(out_dir) / MANIFEST).exists() and not force:  # before minutes of loading
        raise RecordingError(f"--out {out_dir} already holds a golden ({MANIFEST}); pass "
                             f"--force to replace it, or choose another --out")
    cache_dir = cache_dir or default_cache_dir()
    try:
        card = open_cards(device, parse_card_selection("1"))[0]
        loaded = load_under_test(model_spec, card, dtype, cache_dir=cache_dir,
                                 trust_remote_code=trust_remote_code, progress=progress)
    except (DeviceUnavailable, ModelSpecError, ModelLoadError) as exc:
        raise RecordingError(str(exc)) from exc
    fingerprint = model_fingerprint(loaded.path, cache_dir, progress)
    progress("perplexity on the shipped text")
    perplexity = text_perplexity(loaded.model, loaded.tokenizer)
    environment = {**gather_environment(card), "model": loaded.name,
                   "model_path": str(loaded.path), "dtype": dtype,
                   "smoke": is_builtin_spec(model_spec)}
    golden = record_golden(loaded.model, loaded.tokenizer, dtype=dtype, model_name=loaded.name,
                           fingerprint=fingerprint, environment=environment,
                           perplexity=perplexity.metrics(), progress=progress)
    try:
        write_golden(golden, out_dir, force=force)
    except (GoldenError, OSError) as exc:
        raise RecordingError(f"--out {out_dir}: cannot write the golden ({exc})") from exc
    return golden
