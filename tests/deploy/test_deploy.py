"""Serving configuration from facts and the SGLang launch script generated from it."""

import os
import shutil
import subprocess

import pytest

from pytest_ascend.box.placement import GIB, CardMemory, plan_placement
from pytest_ascend.model.arithmetic import parameter_count
from pytest_ascend.platforms import get_platform
from pytest_ascend.serving.deploy import (
    DeployError,
    check_sglang_flags,
    launch_command,
    launch_script,
    serving_config,
)
from pytest_ascend.serving.sglang_client import ServerError
from pytest_ascend.serving.sglang_server import launch_argv, launch_env, server_cards

pytestmark = pytest.mark.npu

# Qwen2.5-14B-Instruct's published config.json (the fields the arithmetic uses).
QWEN25_14B = {
    "model_type": "qwen2", "hidden_size": 5120, "intermediate_size": 13824,
    "num_attention_heads": 40, "num_key_value_heads": 8, "num_hidden_layers": 48,
    "vocab_size": 152064, "tie_word_embeddings": False, "max_position_embeddings": 32768,
}
KV_PER_TOKEN = 2 * 48 * 8 * 128 * 2  # 192 KiB in float16
WEIGHTS = 14.77e9 * 2


def test_qwen25_14b_parameter_count_is_the_published_one():
    assert parameter_count(QWEN25_14B) == pytest.approx(14.77e9, rel=0.002)


def test_qwen25_14b_on_a_64gb_device_matches_hand_arithmetic():
    config = serving_config(QWEN25_14B, 64 * 10**9, context_len=32768)
    hand = (64e9 - WEIGHTS) / KV_PER_TOKEN  # ~175k tokens
    assert config.tp_size == 1
    assert config.max_total_tokens == pytest.approx(hand, rel=0.05)
    assert config.max_running_requests == config.max_total_tokens // 32768 == 5
    assert config.mem_fraction_static * 64e9 - WEIGHTS == pytest.approx(
        config.max_total_tokens * KV_PER_TOKEN, rel=1e-3)  # SGLang's own pool arithmetic


def test_qwen25_14b_on_a_32gb_device_needs_two():
    config = serving_config(QWEN25_14B, 32 * 10**9, context_len=32768)
    hand = (32e9 - WEIGHTS / 2) / (KV_PER_TOKEN / 2)  # weights and KV heads split in two
    assert config.tp_size == 2
    assert config.kv_bytes_per_token_per_device == KV_PER_TOKEN // 2
    assert config.max_total_tokens == pytest.approx(hand, rel=0.05)


def test_a_model_that_fits_nowhere_says_what_would_help():
    with pytest.raises(DeployError, match="do not fit 8 devices of 2.0 GB.*shorter"):
        serving_config(QWEN25_14B, 2 * 10**9, context_len=32768)


def test_config_from_the_session_models_measured_facts(model_under_test, npu_device):
    """The config's weight arithmetic is the loaded model's, and its pool fits the memory that
    was free before loading."""
    config_json = model_under_test.model.config.to_dict()
    assert parameter_count(config_json) == model_under_test.parameters
    free = model_under_test.memory_before.free
    if free is None:
        pytest.skip("this device reports no free memory (torch_npu 5.0.x has no mem_get_info)")
    config = serving_config(config_json, free, context_len=4096, dtype=model_under_test.dtype)
    assert config.weight_bytes == model_under_test.weight_bytes
    used = config.weight_bytes_per_device + config.max_total_tokens * \
        config.kv_bytes_per_token_per_device + config.reserve_bytes
    assert used <= free


def _script(path, **kwargs):
    config = serving_config(QWEN25_14B, 64 * 10**9, context_len=8192)
    return launch_script(config, path, platform=get_platform(kwargs.pop("device", "npu")),
                         **kwargs)


def test_script_binds_localhost_and_passes_bash_n_and_shellcheck(tmp_path):
    script = tmp_path / "launch.sh"
    script.write_text(_script("/models/Qwen2.5-14B-Instruct"))
    assert "--host 127.0.0.1" in script.read_text()
    assert "--device npu" in script.read_text() and "--attention-backend ascend" in script.read_text()
    subprocess.run(["bash", "-n", str(script)], check=True)
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck); bash -n passed")
    check = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


def test_an_injection_in_the_model_path_stays_inert(tmp_path):
    marker = tmp_path / "pwned"
    path = f"/models/x$(touch {marker})`touch {marker}`;touch {marker} 'q\"x"
    script = tmp_path / "launch.sh"
    script.write_text(_script(path, host="0.0.0.0"))
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    seen = tmp_path / "argv"
    (fake_bin / "python").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {seen}\n')
    (fake_bin / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"}
    subprocess.run(["bash", str(script)], check=True, env=env)
    assert not marker.exists()
    args = seen.read_text().splitlines()
    assert args[args.index("--model-path") + 1] == path  # arrived as one literal argument
    assert args[args.index("--host") + 1] == "0.0.0.0"  # only because it was asked for


def test_flags_are_checked_against_sglangs_arguments():
    check_sglang_flags(["--model-path", "m", "--tp-size", "2", "--device", "npu"])
    with pytest.raises(DeployError, match="--tensor-paralel"):
        check_sglang_flags(["--model-path", "m", "--tensor-paralel", "2"])


@pytest.mark.parametrize("device, expected", [
    ("npu", ["--device", "npu", "--attention-backend", "ascend"]),
    ("cuda", ["--device", "cuda"]),
    ("cpu", ["--device", "cpu", "--attention-backend", "torch_native"]),
])
def test_launch_command_per_device(device, expected):
    config = serving_config(QWEN25_14B, 80 * 10**9, context_len=8192)
    argv = launch_command(config, "/m", platform=get_platform(device), port=31000)
    joined = " ".join(argv)
    assert argv[:3] == ["python", "-m", "sglang.launch_server"]
    assert " ".join(expected) in joined and "--port 31000" in joined
    assert f"--max-total-tokens {config.max_total_tokens}" in joined


class StandInCard:
    """A card of the npu platform with a given free memory, as the session's plan holds it."""

    def __init__(self, index, free_gb):
        from pytest_ascend.platforms.npu import NpuPlatform

        self.index, self.free, self.platform = index, int(free_gb * 10**9), NpuPlatform()

    def memory(self):
        from pytest_ascend.platforms.device import MemorySnapshot

        return MemorySnapshot(0, 0, 0, 2 * self.free, self.free, "stand-in")


class StandInPlan:
    """A session plan's cards and placement, as session.plan_session makes them."""

    def __init__(self, cards, placement):
        self.cards, self.placement = tuple(cards), placement


def _placed(free_gb, count):
    cards = [StandInCard(i, free_gb) for i in range(count)]
    memory = [CardMemory(card.index, 2 * card.free, card.free) for card in cards]
    return StandInPlan(cards, plan_placement(memory, QWEN25_14B, "float16", sglang=True,
                                             torchrun=False))


def _flag(argv, flag):
    return argv[argv.index(flag) + 1] if flag in argv else None


@pytest.mark.parametrize("free_gb, count, cards, tp", [
    (36, 8, (2, 3), "2"),  # 32 GB class cards: the model split on 0,1, the server on 2,3
    (68, 2, (1,), "1"),  # a 64 GB class card each: the server on a card of its own
    (150, 1, (0,), "1"),  # one large card holds both, with KV room for the server
])
def test_the_launched_server_takes_its_cards_and_fraction_from_the_plan(free_gb, count, cards,
                                                                        tp):
    plan = _placed(free_gb, count)
    chosen, placed = server_cards(plan)
    assert tuple(card.index for card in chosen) == cards
    argv = launch_argv("python", "/m", platform=get_platform("npu"), dtype="float16",
                       port=31000, placed=placed)
    assert _flag(argv, "--tp-size") == tp
    assert _flag(argv, "--mem-fraction-static") == f"{placed.mem_fraction_static:.4f}"
    assert argv.count("--device") == 1 and _flag(argv, "--device") == "npu"


def test_a_server_the_plan_cannot_place_is_one_line_naming_the_cards():
    plan = _placed(68, 1)  # one 64 GB class card: the model leaves no room for a second copy
    with pytest.raises(ServerError, match=r"^--sglang-launch: .*it would go on card 1, "
                                          r"--ascend-devices=0,1; or run"):
        server_cards(plan)


def test_an_explicit_sglang_arg_is_the_users_call():
    plan = _placed(36, 8)
    _, placed = server_cards(plan)
    argv = launch_argv("python", "/m", platform=get_platform("npu"), dtype="float16",
                       port=31000, placed=placed,
                       extra_args=["--tp=4", "--mem-fraction-static", "0.5"])
    assert "--tp-size" not in argv and argv.count("--mem-fraction-static") == 1
    assert argv[-3:] == ["--tp=4", "--mem-fraction-static", "0.5"]


def test_a_host_platform_keeps_sglangs_own_sizing():
    plan = StandInPlan([StandInCard(0, 64)], plan_placement(
        [CardMemory(0, 256 * GIB, 160 * GIB)], QWEN25_14B, "float16", sglang=True,
        torchrun=False))
    _, placed = server_cards(plan)
    argv = launch_argv("python", "/m", platform=get_platform("cpu"), dtype="float16",
                       port=31000, placed=placed)
    assert "--mem-fraction-static" not in argv and _flag(argv, "--tp-size") == "1"


def test_the_server_sees_only_the_selected_cards(monkeypatch):
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "4,5,6,7")
    env = launch_env([StandInCard(1, 64), StandInCard(3, 64)])
    assert env["ASCEND_RT_VISIBLE_DEVICES"] == "5,7"
