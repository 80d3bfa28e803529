"""Settings, the CLI's refusals, and the service's own start/stop (real sockets on 127.0.0.1;
the broker is unreachable, which the router survives)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import structlog
from pydantic import SecretStr, ValidationError
from typer.testing import CliRunner

from lodestar.bus.settings import KafkaSettings
from lodestar.cli.app import build_app
from lodestar_router.service import PortInUseError, RouterService
from lodestar_router.settings import RouterSettings, StaticInstance

RUNNER = CliRunner()
UNREACHABLE = KafkaSettings(bootstrap_servers="127.0.0.1:1")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The command configures logging to CliRunner's (then closed) stderr; undo that afterwards."""
    yield
    structlog.reset_defaults()
    logging.basicConfig(force=True)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LODESTAR_ROUTER_ADMIN_TOKEN", "xyzzy-42")
    monkeypatch.setenv("LODESTAR_ROUTER_STALENESS_S", "1.5")
    monkeypatch.setenv("LODESTAR_ROUTER_INSTANCES", '[{"instance_id": "a", "url": "http://a:1", "model": "m"}]')
    s = RouterSettings()
    assert s.admin_token is not None and s.admin_token.get_secret_value() == "xyzzy-42"
    assert "xyzzy" not in repr(s)
    assert (s.staleness_s, s.profile, s.instances) == (
        1.5,
        "lodestar",
        [StaticInstance(instance_id="a", url="http://a:1", model="m")],
    )


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        pytest.param({"staleness_s": 5.0, "remove_after_s": 5.0}, "must be greater than staleness_s", id="removal"),
        pytest.param({"staleness_s": 0}, "greater than 0", id="zero-staleness"),
        pytest.param(
            {"instances": [{"instance_id": "a", "url": "u", "model": "m"}] * 2}, "duplicate instance_id a", id="dupes"
        ),
        pytest.param({"instances": [{"instance_id": "a", "url": "u"}]}, "model", id="instance-without-model"),
        pytest.param({"port": 70000}, "less than or equal to 65535", id="port"),
        pytest.param({"ejection_max_fraction": 0}, "ejection_max_fraction", id="eject-cap"),
    ],
)
def test_bad_settings(fields: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        RouterSettings.model_validate(fields)


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        pytest.param(["--staleness", "0"], {}, "invalid --staleness", id="staleness"),
        pytest.param(["--port", "70000"], {}, "invalid --port", id="port"),
        pytest.param(["--profile", "nope"], {}, "invalid --profile: unknown profile 'nope'", id="profile"),
        pytest.param(["--profile", "/no/such.yaml"], {}, "cannot read profile file", id="profile-file"),
        pytest.param(
            [],
            {"LODESTAR_ROUTER_INSTANCES": "not json"},
            "invalid LODESTAR_ROUTER_INSTANCES: not valid JSON",
            id="instances-env",
        ),
    ],
)
def test_cli_refuses_bad_options(
    monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], fragment: str
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    result = RUNNER.invoke(build_app(), ["router", *args])
    assert result.exit_code == 2, result.output
    assert "lodestar router:" in result.output and fragment in result.output


@contextlib.asynccontextmanager
async def _running(settings: RouterSettings) -> AsyncIterator[RouterService]:
    service = RouterService.build(settings, UNREACHABLE)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    async with asyncio.timeout(10):
        while True:
            if service.api_port is not None:
                break
            await asyncio.sleep(0.01)
    try:
        yield service
    finally:
        stop.set()
        async with asyncio.timeout(20):
            await task


def _settings(**fields: object) -> RouterSettings:
    return RouterSettings.model_validate(
        {
            "port": 0,
            "admin_port": 0,
            "drain_timeout_s": 0.2,
            "profile": "round-robin",
            "instances": [{"instance_id": "a", "url": "http://a:1", "model": "m"}],
            **fields,
        }
    )


async def test_service_serves_without_broker_and_without_admin() -> None:
    async with _running(_settings()) as service:
        assert service.admin_port is None and not service.admin_enabled
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.api_port}") as client:
            health = (await client.get("/health")).json()
            assert (health["status"], health["admin"], health["instances"]) == ("ok", False, 1)
            r = await client.post("/v1/route", json={"request_id": "r", "model": "m", "prompt_tokens": 3})
            assert r.json()["instance_id"] == "a"
    # the undeliverable decision event is counted as dropped at shutdown
    assert service.publisher.stats.dropped == 1


async def test_empty_token_disables_admin() -> None:
    assert not RouterService.build(_settings(admin_token=SecretStr("")), UNREACHABLE).admin_enabled


async def test_admin_port_opens_with_a_token() -> None:
    async with _running(_settings(admin_token=SecretStr("t0k"))) as service:
        assert service.admin_port is not None and service.admin_port != service.api_port
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.admin_port}") as client:
            assert (await client.get("/admin/state")).status_code == 401
            r = await client.get("/admin/state", headers={"Authorization": "Bearer t0k"})
            assert r.status_code == 200 and r.json()["policy"] == "round-robin"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.api_port}") as client:
            assert (await client.get("/admin/state")).status_code == 404  # not on the public port


async def test_port_in_use_is_reported() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        service = RouterService.build(_settings(port=port), UNREACHABLE)
        with pytest.raises(PortInUseError, match=f"router API port {port}"):
            await service.run(asyncio.Event())
