"""A bad setting is named the way the user gave it: the option when it came from the command
line, the environment variable (what compose sets) when it came from there."""

from __future__ import annotations

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from typer.testing import CliRunner

from lodestar.bus.settings import KafkaSettings
from lodestar.cli.app import build_app
from lodestar.settings_input import SettingsInputError, env_name, load_settings


class DemoSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LODESTAR_DEMO_", extra="ignore")

    port: int = Field(default=8080, ge=1, le=65535)
    interval_s: float = Field(default=1.0, gt=0)
    names: list[str] = Field(default_factory=list)


def test_values_from_options_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LODESTAR_DEMO_PORT", "9000")
    monkeypatch.setenv("LODESTAR_DEMO_INTERVAL_S", "2.5")
    settings = load_settings(DemoSettings, {"port": 9100, "interval_s": None})
    assert (settings.port, settings.interval_s) == (9100, 2.5)  # None: the option was not given


def test_a_bad_option_is_named_as_the_option() -> None:
    with pytest.raises(SettingsInputError) as caught:
        load_settings(DemoSettings, {"interval_s": 0}, {"interval_s": "--interval"})
    assert str(caught.value) == "invalid --interval: Input should be greater than 0"
    with pytest.raises(SettingsInputError, match=r"^invalid --port: "):
        load_settings(DemoSettings, {"port": 0})  # no entry: --field-name


def test_a_bad_variable_is_named_as_the_variable_and_further_errors_are_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LODESTAR_DEMO_PORT", "abc")
    monkeypatch.setenv("LODESTAR_DEMO_INTERVAL_S", "-1")
    with pytest.raises(SettingsInputError) as caught:
        load_settings(DemoSettings, {}, {"port": "--port"})
    assert caught.value.where == "LODESTAR_DEMO_PORT"
    assert caught.value.reason.endswith("(+1 more)")


def test_a_complex_variable_that_is_not_json_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LODESTAR_DEMO_NAMES", "not json")
    with pytest.raises(SettingsInputError) as caught:
        load_settings(DemoSettings)
    assert str(caught.value) == "invalid LODESTAR_DEMO_NAMES: not valid JSON"


def test_env_names_follow_each_settings_prefix() -> None:
    assert env_name(KafkaSettings, "bootstrap_servers") == "LODESTAR_KAFKA_BOOTSTRAP_SERVERS"
    assert env_name(DemoSettings, "interval_s") == "LODESTAR_DEMO_INTERVAL_S"


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["gateway", "--port", "70000"], {}, "lodestar gateway: invalid --port: "),
        (["gateway"], {"LODESTAR_GATEWAY_PORT": "abc"}, "lodestar gateway: invalid LODESTAR_GATEWAY_PORT: "),
        (["router"], {"LODESTAR_ROUTER_ADMIN_PORT": "-3"}, "lodestar router: invalid LODESTAR_ROUTER_ADMIN_PORT: "),
        (["trainer"], {"LODESTAR_KAFKA_SESSION_TIMEOUT_MS": "x"}, "invalid LODESTAR_KAFKA_SESSION_TIMEOUT_MS: "),
        (
            ["emulate", "--hardware", "A10G"],
            {"LODESTAR_EMULATOR_TIME_SCALE": "0"},
            "invalid LODESTAR_EMULATOR_TIME_SCALE",
        ),
    ],
    ids=["gateway-option", "gateway-env", "router-env", "kafka-env", "emulator-env"],
)
def test_service_commands_name_the_option_or_variable(args: list[str], env: dict[str, str], expected: str) -> None:
    result = CliRunner().invoke(build_app(), args, env={"COLUMNS": "200", **env})
    assert result.exit_code == 2, result.output
    assert expected in result.output
