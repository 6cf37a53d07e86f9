"""Processes the suite starts (an SGLang server, a fresh-interpreter measurement): each runs
in its own session (process group), so a Ctrl-C in the terminal reaches pytest alone, which
then stops it in order; and each dies with the process that started it, even when that one
is killed outright (the OOM killer, kill -9), through Linux's parent-death signal."""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
from typing import Mapping, Optional, Sequence

import psutil


def die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the process that started it dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except OSError:
        pass  # not Linux: the stop in `run_helper` / the server's stop still applies


def run_helper(argv: Sequence[str], timeout_s: float,
               env: Optional[Mapping[str, str]] = None) -> subprocess.CompletedProcess:
    """Run a helper to completion, its output captured. On a timeout, a Ctrl-C or any other
    exception here, its whole tree is stopped before the exception goes on."""
    process = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, text=True, start_new_session=True,
                               preexec_fn=die_with_parent,
                               env=None if env is None else dict(env))
    try:
        out, err = process.communicate(timeout=timeout_s)
    except BaseException:
        stop_process_tree(process.pid, grace_s=5)
        process.wait()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def stop_process_tree(pid: int, grace_s: float = 15.0) -> None:
    """SIGTERM the process and its descendants, wait `grace_s`, SIGKILL what is left, reap."""
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


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now, for a process the suite starts to bind a moment
    later (a server, a rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
