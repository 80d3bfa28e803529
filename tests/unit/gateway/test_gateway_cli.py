"""`lodestar gateway` refuses bad settings with one line naming the option (before any I/O),
and settings are checked as a whole."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog
from pydantic import ValidationError
from typer.testing import CliRunner

from lodestar.cli.app import build_app
from lodestar_gateway.settings import GatewaySettings

RUNNER = CliRunner()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The command configures logging to CliRunner's (then closed) stderr; undo that afterwards."""
    yield
    structlog.reset_defaults()
    logging.basicConfig(force=True)


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        pytest.param(["--port", "70000"], {}, "invalid --port", id="port"),
        pytest.param(["--route-timeout", "0"], {}, "invalid --route-timeout", id="route-timeout"),
        pytest.param(["--max-attempts", "0"], {}, "invalid --max-attempts", id="attempts"),
        pytest.param(["--staleness", "40"], {}, "remove_after_s (30.0) must be greater", id="staleness"),
        pytest.param(["--fallback-profile", "no-such"], {}, "invalid --fallback-profile", id="profile"),
        pytest.param([], {"LODESTAR_GATEWAY_INSTANCES": "[{}]"}, "invalid LODESTAR_GATEWAY_INSTANCES", id="inst"),
        pytest.param([], {"LODESTAR_GATEWAY_MAX_PROMPT_TOKENS": "999999"}, "invalid max_prompt_tokens", id="limit"),
    ],
)
def test_bad_settings_exit_2_naming_the_option(args: list[str], env: dict[str, str], fragment: str) -> None:
    result = RUNNER.invoke(build_app(), ["gateway", *args], env=env)
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert result.output.startswith("lodestar gateway:")


def test_help_lists_the_options() -> None:
    result = RUNNER.invoke(build_app(), ["gateway", "--help"])
    assert result.exit_code == 0
    for option in ("--router-url", "--route-timeout", "--fallback-profile", "--max-attempts"):
        assert option in result.output


def test_duplicate_static_instances_are_refused() -> None:
    inst = {"instance_id": "a", "url": "http://a:1", "model": "m"}
    with pytest.raises(ValidationError, match="duplicate instance_id a"):
        GatewaySettings(instances=[inst, inst])
