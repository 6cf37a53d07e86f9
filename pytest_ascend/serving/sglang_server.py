"""A real SGLang server for a session: launched and owned for it, or connected to.

`session_server(plan, log_dir, progress)` is the one entry point: it connects to
--sglang-url, or launches `python -m sglang.launch_server` for the session's model on the
cards the session's placement plan gave the server (box.placement: never sharing a card
with the suite's own model unless both fit, with a computed --mem-fraction-static), and yields a `SessionServer` (its client, what it says about itself, and
the process we own, if any) until the block ends.

Lessons from vLLM's RemoteOpenAIServer and SGLang's popen_launch_server, minus their bugs:
the port comes from the OS; the server runs in a new session (its own process group, so the
terminal's Ctrl-C reaches pytest, which then stops it in order); it is started inside
`__enter__` so a failed start still cleans up; readiness is `/health_generate` answering
200 (SGLang answers 503 while loading) while also watching for the process exiting early;
stopping sends SIGTERM to every process of the tree (psutil), waits, SIGKILLs survivors and
reaps them; Linux also kills the launcher if pytest itself dies (PR_SET_PDEATHSIG). The
server's output goes to a log file whose tail is attached to failures.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

from pytest_ascend.processes import die_with_parent, free_port, stop_process_tree
from pytest_ascend.serving.sglang_client import ServerError, SGLangClient, is_healthy

Progress = Callable[[str], None]


class ServerProcess:
    """An SGLang server process tree we started, ready once `__enter__` returns."""

    def __init__(
        self,
        argv: Sequence[str],
        base_url: str,
        log_path: Path,
        *,
        env: Optional[Mapping[str, str]] = None,
        timeout_s: float,
        progress: Progress = lambda message: None,
    ) -> None:
        self.argv = list(argv)
        self.base_url = base_url.rstrip("/")
        self.log_path = log_path
        self.env = dict(os.environ if env is None else env)
        self.timeout_s = timeout_s
        self.progress = progress
        self.process: Optional[subprocess.Popen] = None

    def __enter__(self) -> "ServerProcess":
        try:
            self.start()
            self.wait_ready()
        except BaseException:  # Ctrl-C while waiting included: never leave it running
            self.stop()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, start_new_session=True, preexec_fn=die_with_parent,
            )
        except OSError as exc:
            raise ServerError(f"cannot start {self.argv[0]}: {exc.strerror}") from None
        finally:
            log.close()

    def wait_ready(self) -> None:
        """Poll /health_generate until 200; fail at once when the process exits or its log
        shows a fatal error (a port in use, a traceback), never after a silent timeout."""
        start = time.monotonic()
        last_note = start
        while True:
            gone = self.exit_reason()
            if gone is not None:
                raise ServerError(f"{gone} before it was ready")
            fatal = self.fatal_line()
            if fatal is not None:
                raise ServerError(f"the server failed to start (log: {self.log_path}): {fatal}")
            if is_healthy(self.base_url):
                self.progress(f"SGLang server ready at {self.base_url} after "
                              f"{time.monotonic() - start:.0f} s")
                return
            now = time.monotonic()
            if now - start > self.timeout_s:
                raise ServerError(f"the server was not healthy after {self.timeout_s:.0f} s "
                                  f"(log: {self.log_path}): {self.last_log_line()}")
            if now - last_note >= 15:
                self.progress(f"waiting for the SGLang server ({now - start:.0f} s): "
                              f"{self.last_log_line()}")
                last_note = now
            time.sleep(0.5)

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the whole tree, wait `grace_s`, SIGKILL what is left, reap."""
        if self.process is None:
            return
        stop_process_tree(self.process.pid, grace_s)
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        self.process = None

    def exit_reason(self) -> Optional[str]:
        """None while the server runs; once it exited, how (code or signal) and why."""
        code = self.process.poll() if self.process is not None else None
        if code is None:
            return None
        how = f"signal {-code}" if code < 0 else f"code {code}"
        return f"the SGLang server exited with {how} (log: {self.log_path}): {self.last_words()}"

    def fatal_line(self) -> Optional[str]:
        """The line that says why, if the log shows an error no server survives."""
        text = self._log_text()
        return self.last_words() if _FATAL.search(text) else None

    def last_words(self) -> str:
        """One line: the last traceback's exception, or a fatal line, else the last line."""
        lines = [line for line in self._log_text().splitlines() if line.strip()]
        starts = [i for i, line in enumerate(lines) if line.startswith("Traceback")]
        if starts:
            after = lines[starts[-1] + 1:]
            raised = [line for line in after if not line[0].isspace()]
            if raised:
                return raised[0][:300]
        fatal = [line for line in lines if _FATAL.search(line)]
        if fatal:
            return fatal[-1][:300]
        return lines[-1][:300] if lines else "(no output yet)"

    def log_tail(self) -> str:
        """What a failure report needs of the log: from the last traceback on (at most 40
        lines), else the last 15 lines; not the import noise before them."""
        lines = self._log_text().splitlines()
        starts = [i for i, line in enumerate(lines) if line.startswith("Traceback")]
        if starts:
            return "\n".join(lines[starts[-1]:][:40])
        return "\n".join(lines[-15:])

    def last_log_line(self) -> str:
        lines = [line for line in self._log_text().splitlines() if line.strip()]
        return lines[-1][:300] if lines else "(no output yet)"

    def _log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


# A server that logged one of these will not become healthy: fail now, not at the timeout.
_FATAL = re.compile(r"address already in use|^Traceback \(most recent call last\)",
                    re.IGNORECASE | re.MULTILINE)


def launch_argv(
    python: str, model_dir: Path, *, platform: Any, dtype: str, port: int,
    placed: Optional[Any] = None, extra_args: Sequence[str] = (),
) -> list[str]:
    """`python -m sglang.launch_server` for a session's server on `platform`'s device, built
    by deploy.launch_command: the session's dtype, the platform's defaults for a session's
    server, and the placement plan's `--tp-size` and `--mem-fraction-static` (`placed`, the
    plan's sglang part), each unless `extra_args` (--sglang-arg) sets it."""
    from pytest_ascend.serving.deploy import launch_command

    given = {_ALIASES.get(flag, flag) for flag in
             (arg.split("=", 1)[0] for arg in extra_args if arg.startswith("--"))}
    ours = [("--dtype", dtype), *platform.sglang_server_defaults]
    if placed is not None:
        ours.append(("--tp-size", str(placed.tp)))
        # Without memory of its own the "card" is the host's RAM, shared with everything on
        # it: SGLang's CPU backend sizes itself there, and a fraction computed from a moving
        # `available` figure could make it refuse to start.
        if placed.mem_fraction_static is not None and platform.has_device_memory:
            ours.append(("--mem-fraction-static", f"{placed.mem_fraction_static:.4f}"))
    args = [part for flag, value in ours if flag not in given for part in (flag, value)]
    return launch_command(None, str(model_dir), platform=platform, port=port, python=python,
                          extra_args=[*args, *extra_args])


# Other spellings SGLang takes for the flags above (sgl-project/sglang,
# docs/advanced_features/server_arguments.md: `--tp 2`, `tensor-parallel-size: 2`).
_ALIASES = {"--tp": "--tp-size", "--tensor-parallel-size": "--tp-size"}


def launch_env(cards: Sequence[Any]) -> dict:
    """This process's environment, its visible devices narrowed to the server's cards, plus
    what the platform's SGLang needs."""
    from pytest_ascend.box.launch import rank_layout

    return {**rank_layout(cards).env, **cards[0].platform.sglang_env}


def server_cards(plan: Any) -> tuple[Any, Optional[Any]]:
    """The cards the session's server runs on and the plan's sglang part: the cards the
    placement plan gave it, or every selected card (SGLang's own sizing) where the session
    has no plan. Raises ServerError with the plan's reason where it has no place."""
    placement = getattr(plan, "placement", None)
    if placement is None:
        return tuple(plan.cards), None
    if "sglang" in placement.skipped:
        raise ServerError(f"--sglang-launch: {placement.skipped['sglang']}")
    placed = placement.part("sglang")
    if placed is None:
        return tuple(plan.cards), None
    return tuple(card for card in plan.cards if card.index in placed.cards), placed


@dataclass
class SessionServer:
    """The session's SGLang server: its client, its own account of itself for the report,
    and the process tree we launched (None when connected to a running server)."""

    client: SGLangClient
    facts: dict
    process: Optional[ServerProcess]

    def log_tail(self) -> str:
        """The launched server's last log lines ("" for a server we did not launch)."""
        return self.process.log_tail() if self.process is not None else ""


@contextmanager
def session_server(plan: Any, log_dir: Path, progress: Progress) -> Iterator[SessionServer]:
    """The SGLang server for a session plan (session.SessionPlan): --sglang-url connects to a
    running one; otherwise one is launched for the plan's model on the cards its placement
    gave the server, from --sglang-python, with --sglang-arg, and stopped with its whole
    process tree when the block ends. Raises ServerError with one line naming the option at fault."""
    from pytest_ascend.model.loading import ModelSpecError, resolve_model_dir

    settings = plan.settings
    if settings.sglang_url:
        client = SGLangClient(settings.sglang_url)
        if not client.healthy():
            raise ServerError(f"--sglang-url {settings.sglang_url}: no healthy SGLang server "
                              f"there (GET /health_generate did not answer 200)")
        yield SessionServer(client, client.facts(launched=False), None)
        return
    try:
        model_dir = resolve_model_dir(settings.model, settings.cache, progress=progress)
    except ModelSpecError as exc:
        raise ServerError(str(exc)) from None
    cards, placed = server_cards(plan)
    port = free_port()
    argv = launch_argv(settings.sglang_python or sys.executable, model_dir,
                       platform=plan.device.platform, dtype=plan.dtype, port=port,
                       placed=placed, extra_args=settings.sglang_arg)
    log = log_dir / "server.log"
    where = ",".join(str(card.index) for card in cards)
    progress(f"launching SGLang on card{'s' if len(cards) > 1 else ''} {where} (log {log}): "
             f"{shlex.join(argv)}")
    process = ServerProcess(argv, f"http://127.0.0.1:{port}", log, env=launch_env(cards),
                            timeout_s=settings.sglang_timeout, progress=progress)
    with ExitStack() as stack:
        try:
            stack.enter_context(process)
        except ServerError as exc:
            raise ServerError(f"--sglang-launch: {exc}") from None
        client = SGLangClient(process.base_url, gone=process.exit_reason)
        yield SessionServer(client, client.facts(launched=True, log=log), process)
    progress("SGLang server stopped")
