"""Option resolution: CLI > environment > ini > default, and errors that name the source."""

import pytest

from pytest_ascend.settings import OPTIONS, SettingsError, resolve_settings

SPECS = {spec.name: spec for spec in OPTIONS}


def resolve(cli=None, ini=None, env=None):
    cli, ini = cli or {}, ini or {}
    return resolve_settings(
        cli=lambda spec: cli.get(spec.name), ini=lambda spec: ini.get(spec.name), environ=env or {}
    )


def test_defaults():
    s = resolve()
    assert (s.device, s.model, s.draft_model, s.dtype) == ("auto", "tiny", "tiny-draft", None)
    assert not s.trust_remote_code and not s.run_slow
    assert s.source_of("device") == "default"


def test_precedence_cli_over_env_over_ini():
    ini = {"dtype": "bfloat16"}
    env = {"PYTEST_ASCEND_DTYPE": "float16"}
    assert resolve(ini=ini).dtype == "bfloat16"
    assert resolve(ini=ini, env=env).dtype == "float16"
    s = resolve(cli={"dtype": "float32"}, ini=ini, env=env)
    assert s.dtype == "float32"
    assert s.source_of("dtype") == "command line --ascend-dtype"


def test_every_option_has_flag_ini_and_env():
    for spec in OPTIONS:
        assert spec.flag.startswith("--")
        assert spec.ini.startswith("ascend_")
        assert spec.env.startswith("PYTEST_ASCEND_")


def test_bad_env_value_names_the_variable():
    with pytest.raises(SettingsError, match="environment variable PYTEST_ASCEND_DEVICE"):
        resolve(env={"PYTEST_ASCEND_DEVICE": "gpu"})


@pytest.mark.parametrize("text, expected", [("1", True), ("yes", True), ("off", False), ("", False)])
def test_boolean_env_values(text, expected):
    assert resolve(env={"PYTEST_ASCEND_RUN_SLOW": text}).run_slow is expected


def test_bad_boolean_is_an_error():
    with pytest.raises(SettingsError, match="not a boolean"):
        resolve(env={"PYTEST_ASCEND_TRUST_REMOTE_CODE": "maybe"})


def test_draft_defaults_to_none_for_a_real_checkpoint(tmp_path):
    assert resolve(cli={"model": str(tmp_path)}).draft_model is None


def test_tiny_draft_with_a_real_checkpoint_is_refused(tmp_path):
    with pytest.raises(SettingsError, match="only pairs with the built-in model"):
        resolve(cli={"model": str(tmp_path), "draft_model": "tiny-draft"})


def test_cache_dir_from_env(tmp_path):
    assert resolve(env={"PYTEST_ASCEND_CACHE": str(tmp_path)}).cache == tmp_path


@pytest.mark.parametrize("source, raw, message", [
    ("cli", "0;1", "--ascend-devices: '0;1' from command line --ascend-devices: use all"),
    ("env", "x", "from environment variable PYTEST_ASCEND_DEVICES: use all"),
])
def test_a_misspelt_card_selection_names_its_source(source, raw, message):
    given = {"cli": {"devices": raw}} if source == "cli" else {
        "env": {"PYTEST_ASCEND_DEVICES": raw}}
    with pytest.raises(SettingsError, match=message):
        resolve(**given)


def test_card_tolerance_is_a_fraction():
    assert resolve(cli={"card_tolerance": "0.05"}).card_tolerance == 0.05
    with pytest.raises(SettingsError, match="not a fraction between 0 and 1"):
        resolve(cli={"card_tolerance": "10"})


def test_defaults_are_written_once_in_the_option_table():
    """Settings and --help take every default from OPTIONS; nothing else restates them."""
    settings = resolve()
    for spec in OPTIONS:
        if spec.default is not None:
            default = spec.parse(spec.default) if spec.parse else spec.default
            assert getattr(settings, spec.name) == default, spec.name
    assert SPECS["memory_interval"].help_text().endswith("(default: 0.05)")
    assert SPECS["sglang_timeout"].help_text().endswith("(default: 600)")
    assert "(default:" not in SPECS["trust_remote_code"].help_text()


@pytest.mark.parametrize("args", [("--port=31000",), ("--tp-size", "1", "--host", "0.0.0.0")])
def test_the_launched_servers_port_and_host_are_the_plugins(args):
    with pytest.raises(SettingsError, match=r"the plugin chooses --(port|host) of the server "
                                            r"it launches .* pass --sglang-url"):
        resolve(cli={"sglang_arg": list(args)})
    with pytest.raises(SettingsError, match="environment variable PYTEST_ASCEND_SGLANG_ARG"):
        resolve(env={"PYTEST_ASCEND_SGLANG_ARG": " ".join(args)})


@pytest.mark.parametrize("text", ["0.1", "10%", " 10% "])
def test_a_fraction_reads_as_the_command_reads_it(text):
    assert resolve(env={"PYTEST_ASCEND_CARD_TOLERANCE": text}).card_tolerance == pytest.approx(0.1)


def test_a_fraction_out_of_range_names_its_source():
    with pytest.raises(SettingsError, match="PYTEST_ASCEND_CARD_TOLERANCE.*between 0 and 1"):
        resolve(env={"PYTEST_ASCEND_CARD_TOLERANCE": "150%"})


def test_adding_an_option_is_one_spec_in_its_group(monkeypatch):
    """A new OptionSpec in a sub-package's group is registered, resolved from all four
    sources, typed by its spec and read by its name, with no other edit."""
    import pytest_ascend.settings as settings_module
    from pytest_ascend.options import OptionGroup, OptionSpec

    extra = OptionGroup("extra", (OptionSpec("warmup_rounds", "--ascend-warmup-rounds",
                                             "untimed rounds first", default="2",
                                             parse=int),))
    monkeypatch.setattr(settings_module, "GROUPS", (*settings_module.GROUPS, extra))
    monkeypatch.setattr(settings_module, "OPTIONS", (*settings_module.OPTIONS, *extra.options))
    assert resolve().warmup_rounds == 2
    assert resolve(env={"PYTEST_ASCEND_WARMUP_ROUNDS": "5"}).warmup_rounds == 5
    assert resolve(cli={"warmup_rounds": "7"}, env={"PYTEST_ASCEND_WARMUP_ROUNDS": "5"}
                   ).warmup_rounds == 7


def test_settings_are_read_only_and_name_unknown_options():
    settings = resolve()
    with pytest.raises(AttributeError, match="no option named 'sglang_args'"):
        settings.sglang_args
    with pytest.raises(AttributeError, match="read-only"):
        settings.model = "other"
