"""The HTTP APIs of one SGLang server, with the standard library only: `/generate` (native,
with `meta_info`), `/flush_cache`, `/server_info` or `/get_server_info`, `/model_info` or
`/get_model_info`, and the OpenAI-compatible `/v1/completions` and `/v1/chat/completions`,
streamed or not.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional


class ServerError(RuntimeError):
    """The server could not be started or reached; the message says why in one line."""


def is_healthy(base_url: str) -> bool:
    """`/health_generate` answers 200: SGLang answers 503 while it loads, and only a real
    generation proves the model serves."""
    try:
        with urllib.request.urlopen(f"{base_url}/health_generate", timeout=30) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class SGLangClient:
    """The HTTP APIs of one SGLang server.

    `gone` says why the server is no longer there (None while it runs): a request that
    cannot connect then raises ServerError with that reason ("exited with signal 9" and
    the log's last words) instead of a bare "Connection refused".
    """

    def __init__(self, base_url: str, timeout_s: float = 600.0,
                 gone: Callable[[], Optional[str]] = lambda: None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.gone = gone

    def healthy(self) -> bool:
        return is_healthy(self.base_url)

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

    def continuation_logprob(self, prompt_ids: list, continuation_ids: list) -> float:
        """The log-likelihood of `continuation_ids` after `prompt_ids`: the server's
        input-token log-probabilities of the continuation, summed (what lm-eval's
        loglikelihood requests ask of a server). SGLang gives no log-probability (null) for
        the first position of the range asked (0.5.23), so the range starts one before."""
        body = self._generate_body(list(prompt_ids) + list(continuation_ids), 0, {})
        body.update(return_logprob=True, logprob_start_len=max(len(prompt_ids) - 1, 0))
        entries = self._post("/generate", body)["meta_info"]["input_token_logprobs"]
        return sum(float(entry[0]) for entry in entries[-len(continuation_ids):])

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
        with self._explained():
            return urllib.request.urlopen(request, timeout=self.timeout_s)

    @contextmanager
    def _explained(self) -> Iterator[None]:
        """A lost connection, explained by the server's exit when it exited."""
        try:
            yield
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, ConnectionError):
            reason = self.gone()
            if reason is None:
                raise
            raise ServerError(reason) from None

    def _get(self, path: str) -> dict:
        with self._open(path, None) as response, self._explained():
            return json.loads(response.read())

    def _post(self, path: str, body: dict) -> dict:
        with self._open(path, body) as response, self._explained():
            return json.loads(response.read())

    def _stream(self, path: str, body: dict) -> Iterator[tuple[float, dict]]:
        with self._open(path, body) as response, self._explained():
            for raw in response:
                line = raw.decode().strip()
                if not line.startswith("data:"):
                    continue
                payload = line[len("data:"):].strip()
                if payload == "[DONE]":
                    return
                yield time.perf_counter(), json.loads(payload)


def load_sender(client: SGLangClient, timeout_s: float) -> Callable[[Any], Iterator]:
    """The load generator's `send` for this server: native streaming `/generate` of a
    LoadRequest, eos ignored (every request produces its full output length, as
    bench_serving asks too), each read bounded by `timeout_s`."""
    streaming = SGLangClient(client.base_url, timeout_s, client.gone)
    return lambda request: streaming.generate_stream(request.prompt, request.max_new_tokens,
                                                     ignore_eos=True)
