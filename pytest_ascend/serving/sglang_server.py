"""A real SGLang server for the suite: launched and owned for the session, or connected to.

Lessons from vLLM's RemoteOpenAIServer and SGLang's popen_launch_server, minus their bugs:
the port comes from the OS; the server runs in a new session (its own process group, so the
terminal's Ctrl-C reaches pytest, which then stops it in order); it is started inside
`__enter__` so a failed start still cleans up; readiness is `/health_generate` answering
200 (SGLang answers 503 while loading) while also watching for the process exiting early;
stopping sends SIGTERM to every process of the tree (psutil), waits, SIGKILLs survivors and
reaps them; Linux also kills the launcher if pytest itself dies (PR_SET_PDEATHSIG). The
server's output goes to a log file whose tail is attached to failures.

The HTTP client uses only the standard library: `/generate` (native, with `meta_info`),
`/flush_cache`, `/server_info` or `/get_server_info`, `/get_model_info`, and the
OpenAI-compatible `/v1/completions` and `/v1/chat/completions`, streamed or not.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import psutil


class ServerError(RuntimeError):
    """The server could not be started or reached; the message says why in one line."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the process that started it dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except OSError:
        pass


class ServerProcess:
    """An SGLang server process tree we started, ready once `__enter__` returns."""

    def __init__(
        self,
        argv: Sequence[str],
        base_url: str,
        log_path: Path,
        *,
        env: Optional[Mapping[str, str]] = None,
        timeout_s: float = 600.0,
        progress: Callable[[str], None] = lambda message: None,
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
                env=self.env, start_new_session=True, preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            raise ServerError(f"cannot start {self.argv[0]}: {exc.strerror}") from None
        finally:
            log.close()

    def wait_ready(self) -> None:
        start = time.monotonic()
        last_note = start
        while True:
            code = self.process.poll() if self.process else None
            if code is not None:
                raise ServerError(f"the server exited with code {code} before it was ready "
                                  f"(log: {self.log_path}): {self.last_log_line()}")
            if _healthy(self.base_url):
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

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def last_log_line(self) -> str:
        tail = [line for line in self.log_tail(20).splitlines() if line.strip()]
        return tail[-1][:300] if tail else "(no output yet)"


def stop_process_tree(pid: int, grace_s: float = 15.0) -> None:
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for proc in tree:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(tree, timeout=grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


def _healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/health_generate", timeout=30) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class SGLangClient:
    """The HTTP APIs of one SGLang server."""

    def __init__(self, base_url: str, timeout_s: float = 600.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def healthy(self) -> bool:
        return _healthy(self.base_url)

    def generate(self, prompt: Any, max_new_tokens: int, *, top_logprobs: int = 0,
                 **sampling: Any) -> dict:
        """Native `/generate`: `prompt` is text or a list of token ids; greedy by default;
        `sampling` goes into sampling_params (e.g. ignore_eos=True). Returns text,
        output_ids and meta_info (prompt/completion/cached tokens; with `top_logprobs`, the
        output tokens' logprobs and the top ones at each step)."""
        body = self._generate_body(prompt, max_new_tokens, sampling)
        if top_logprobs:
            body.update(return_logprob=True, top_logprobs_num=top_logprobs)
        return self._post("/generate", body)

    def generate_stream(self, prompt: Any, max_new_tokens: int,
                        **sampling: Any) -> Iterator[tuple[float, dict]]:
        """Streamed `/generate`: (arrival time, chunk) per server-sent event, for TTFT/ITL."""
        body = {**self._generate_body(prompt, max_new_tokens, sampling), "stream": True}
        yield from self._stream("/generate", body)

    def flush_cache(self) -> bool:
        """Empty the radix cache; False when the server refuses (it does with requests
        running)."""
        try:
            with self._open("/flush_cache", {}) as response:
                return response.status == 200
        except urllib.error.HTTPError:
            return False

    def server_info(self) -> dict:
        """`/server_info` (newer SGLang) or `/get_server_info` (older)."""
        return self._first_of("/server_info", "/get_server_info")

    def _first_of(self, *paths: str) -> dict:
        for path in paths:
            try:
                return self._get(path)
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
        raise ServerError(f"{self.base_url} answers none of {', '.join(paths)}")

    def facts(self, launched: bool, log: Optional[Path] = None) -> dict:
        """What the server says it is, for the report: version, model and its arguments."""
        info = self.server_info()
        return {
            "url": self.base_url, "launched": launched, "log": None if log is None else str(log),
            "version": info.get("version"),
            "model_path": info.get("model_path"),
            "server_args": {k: v for k, v in info.items()
                            if isinstance(v, (str, int, float, bool))},
            "model_info": self.model_info(),
        }

    def model_info(self) -> dict:
        """`/model_info` (newer SGLang) or `/get_model_info` (older)."""
        return self._first_of("/model_info", "/get_model_info")

    def completions(self, prompt: str, max_tokens: int, *, stream: bool = False,
                    **extra: Any) -> Any:
        """OpenAI `/v1/completions`, greedy; with `stream`, an iterator of (time, chunk)."""
        return self._openai("/v1/completions", {"prompt": prompt, "max_tokens": max_tokens,
                                                **extra}, stream)

    def chat(self, messages: list, max_tokens: int, *, stream: bool = False,
             **extra: Any) -> Any:
        """OpenAI `/v1/chat/completions`, greedy; with `stream`, an iterator of (time, chunk)."""
        return self._openai("/v1/chat/completions", {"messages": messages,
                                                     "max_tokens": max_tokens, **extra}, stream)

    def _openai(self, path: str, body: dict, stream: bool) -> Any:
        body = {"model": "default", "temperature": 0, **body}
        if stream:
            return self._stream(path, {**body, "stream": True})
        return self._post(path, body)

    @staticmethod
    def _generate_body(prompt: Any, max_new_tokens: int, sampling: dict) -> dict:
        key = "text" if isinstance(prompt, str) else "input_ids"
        params = {"max_new_tokens": max_new_tokens, "temperature": 0.0, **sampling}
        return {key: prompt, "sampling_params": params}

    def _open(self, path: str, body: Optional[dict]) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}{path}", data=data,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        return urllib.request.urlopen(request, timeout=self.timeout_s)

    def _get(self, path: str) -> dict:
        with self._open(path, None) as response:
            return json.loads(response.read())

    def _post(self, path: str, body: dict) -> dict:
        with self._open(path, body) as response:
            return json.loads(response.read())

    def _stream(self, path: str, body: dict) -> Iterator[tuple[float, dict]]:
        with self._open(path, body) as response:
            for raw in response:
                line = raw.decode().strip()
                if not line.startswith("data:"):
                    continue
                payload = line[len("data:"):].strip()
                if payload == "[DONE]":
                    return
                yield time.perf_counter(), json.loads(payload)


def launch_argv(
    python: str, model_dir: Path, *, device_kind: str, dtype: str, port: int,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """`python -m sglang.launch_server` for the session's model on the device under test.

    On a CPU, SGLang's default KV pool is sized from host memory; a 4096-token pool is
    plenty for the suite and keeps the server at ~2 GB (override with --sglang-arg).
    """
    from pytest_ascend.serving.deploy import launch_command

    ours = ["--dtype", dtype]
    if device_kind == "cpu" and "--max-total-tokens" not in extra_args:
        ours += ["--max-total-tokens", "4096"]
    return launch_command(None, str(model_dir), device=device_kind, port=port, python=python,
                          extra_args=ours) + list(extra_args)


def launch_env(device_kind: str) -> dict:
    """SGLang's CPU path is selected by SGLANG_USE_CPU_ENGINE=1."""
    env = dict(os.environ)
    if device_kind == "cpu":
        env["SGLANG_USE_CPU_ENGINE"] = "1"
    return env
