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
        pytest.param(
            [],
            {"LODESTAR_GATEWAY_MAX_PROMPT_TOKENS": "999999"},
            "invalid LODESTAR_GATEWAY_MAX_PROMPT_TOKENS: Input should be less than or equal to",
            id="limit",
        ),
        pytest.param(
            [], {"LODESTAR_GATEWAY_API_KEYS": "alice:lsk-raw-key-pasted"}, "needs the SHA-256 of the key", id="keys"
        ),
        pytest.param(
            [], {"LODESTAR_GATEWAY_API_KEYS_FILE": "/nonexistent/keys"}, "LODESTAR_GATEWAY_API_KEYS_FILE", id="keyfile"
        ),
        pytest.param(
            [],
            {"LODESTAR_GATEWAY_KEY_LIMITS": '{"carol": {"rate_rps": 1}}'},
            "limits for unknown keys: carol",
            id="key-limits",
        ),
        pytest.param(
            [], {"LODESTAR_GATEWAY_RATE_LIMIT_RPS": "0"}, "invalid LODESTAR_GATEWAY_RATE_LIMIT_RPS", id="rate"
        ),
        pytest.param(
            [],
            {"LODESTAR_GATEWAY_EJECTION_MAX_FRACTION": "1.5"},
            "invalid LODESTAR_GATEWAY_EJECTION_MAX_FRACTION",
            id="eject-cap",
        ),
        pytest.param(
            [],
            {"LODESTAR_GATEWAY_ROUTER_EMBEDDED": "true", "LODESTAR_ROUTER_PROFILE": "/nonexistent/profile.yaml"},
            "invalid LODESTAR_ROUTER_PROFILE",
            id="embedded-profile",
        ),
        pytest.param(
            [],
            {"LODESTAR_GATEWAY_ROUTER_EMBEDDED": "true", "LODESTAR_ROUTER_STALENESS_S": "-1"},
            "invalid LODESTAR_ROUTER_STALENESS_S (embedded router)",
            id="embedded-settings",
        ),
    ],
)
def test_bad_settings_exit_2_naming_the_option(args: list[str], env: dict[str, str], fragment: str) -> None:
    result = RUNNER.invoke(build_app(), ["gateway", *args], env=env)
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert result.output.startswith("lodestar gateway:")
    assert "lsk-raw-key-pasted" not in result.output  # a key pasted by mistake is never echoed


def test_help_lists_the_options() -> None:
    result = RUNNER.invoke(build_app(), ["gateway", "--help"])
    assert result.exit_code == 0
    for option in ("--router-url", "--route-timeout", "--fallback-profile", "--max-attempts"):
        assert option in result.output


def test_duplicate_static_instances_are_refused() -> None:
    inst = {"instance_id": "a", "url": "http://a:1", "model": "m"}
    with pytest.raises(ValidationError, match="duplicate instance_id a"):
        GatewaySettings(instances=[inst, inst])


def test_keys_new_and_hash_make_lines_the_gateway_accepts() -> None:
    from lodestar_gateway.auth import KeyTable

    made = RUNNER.invoke(build_app(), ["keys", "new", "svc-a"])
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()
    assert key.startswith("lsk-") and key not in made.stderr
    line = made.stderr.strip().rsplit(" ", 1)[-1]
    hashed = RUNNER.invoke(build_app(), ["keys", "hash", "svc-a"], input=key + "\n")
    assert hashed.exit_code == 0 and hashed.stdout.strip() == line
    assert KeyTable.parse([line], "test").identify(key) == "svc-a"
    for args, stdin in ((["keys", "new", "bad name"], ""), (["keys", "hash", "a"], "\n")):
        refused = RUNNER.invoke(build_app(), args, input=stdin)
        assert refused.exit_code == 2 and "lodestar keys" in refused.output
