"""Kafka TLS and SASL settings map to the aiokafka keyword arguments every producer, consumer
and admin client is built with; secrets come from the environment and never show in reprs."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from lodestar.bus.settings import KafkaSettings

PASSWORD = "kafka-s3cret-pw"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A self-signed certificate and its key (as a client certificate and as the CA)."""
    d = tmp_path_factory.mktemp("certs")
    cert, key = d / "client.pem", d / "client.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=lodestar-test",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return {"ssl_cafile": str(cert), "ssl_certfile": str(cert), "ssl_keyfile": str(key)}


def test_plaintext_has_no_tls_or_sasl() -> None:
    kwargs = KafkaSettings(bootstrap_servers="k:9092").client_kwargs()
    assert kwargs["security_protocol"] == "PLAINTEXT" and kwargs["bootstrap_servers"] == "k:9092"
    assert not {"ssl_context", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password"} & set(kwargs)


def test_ssl_builds_a_verifying_context_with_the_client_certificate(certs: dict[str, str]) -> None:
    kwargs = KafkaSettings(security_protocol="SSL", **certs).client_kwargs()
    ctx = kwargs["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "lodestar-test"),),)]
    assert "sasl_mechanism" not in kwargs


def test_ssl_with_a_missing_ca_file_fails_naming_it(tmp_path: Path) -> None:
    with pytest.raises((FileNotFoundError, ssl.SSLError)):
        KafkaSettings(security_protocol="SSL", ssl_cafile=str(tmp_path / "nope.pem")).client_kwargs()


@pytest.mark.parametrize(
    ("protocol", "mechanism", "tls"),
    [("SASL_SSL", "SCRAM-SHA-512", True), ("SASL_SSL", "PLAIN", True), ("SASL_PLAINTEXT", "SCRAM-SHA-256", False)],
)
def test_sasl_from_the_environment(monkeypatch: pytest.MonkeyPatch, protocol: str, mechanism: str, tls: bool) -> None:
    monkeypatch.setenv("LODESTAR_KAFKA_SECURITY_PROTOCOL", protocol)
    monkeypatch.setenv("LODESTAR_KAFKA_SASL_MECHANISM", mechanism)
    monkeypatch.setenv("LODESTAR_KAFKA_SASL_USERNAME", "lodestar")
    monkeypatch.setenv("LODESTAR_KAFKA_SASL_PASSWORD", PASSWORD)
    settings = KafkaSettings()
    kwargs = settings.client_kwargs()
    assert (kwargs["security_protocol"], kwargs["sasl_mechanism"]) == (protocol, mechanism)
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("lodestar", PASSWORD)
    assert isinstance(kwargs.get("ssl_context"), ssl.SSLContext) is tls
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.model_dump())


@pytest.mark.parametrize("missing", ["SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD"])
def test_sasl_without_credentials_fails_naming_the_variables(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    env = {"SASL_MECHANISM": "PLAIN", "SASL_USERNAME": "u", "SASL_PASSWORD": PASSWORD}
    del env[missing]
    for name, value in env.items():
        monkeypatch.setenv(f"LODESTAR_KAFKA_{name}", value)
    settings = KafkaSettings(security_protocol="SASL_PLAINTEXT")
    with pytest.raises(ValueError, match="LODESTAR_KAFKA_SASL_MECHANISM, _SASL_USERNAME and _SASL_PASSWORD") as err:
        settings.client_kwargs()
    assert PASSWORD not in str(err.value)


def test_unknown_protocol_or_mechanism_is_refused() -> None:
    with pytest.raises(ValueError, match="security_protocol"):
        KafkaSettings(security_protocol="TLS")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sasl_mechanism"):
        KafkaSettings(sasl_mechanism="GSSAPI")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "settings",
    [
        {"security_protocol": "SSL"},
        {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256", "sasl_username": "u",
         "sasl_password": PASSWORD},
        {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u",
         "sasl_password": PASSWORD},
    ],
)  # fmt: skip
async def test_aiokafka_clients_accept_the_kwargs(settings: dict[str, Any], certs: dict[str, str]) -> None:
    """The clients check protocol, mechanism and context when built (no connection is made):
    without the context the settings build, they refuse."""
    kwargs = KafkaSettings(**settings, **certs).client_kwargs()
    producer = AIOKafkaProducer(**kwargs, acks="all", enable_idempotence=False)
    consumer = AIOKafkaConsumer("t", **kwargs, group_id="g")
    AIOKafkaAdminClient(**kwargs)
    await producer.stop()
    await consumer.stop()
    if "ssl_context" in kwargs:
        without = {k: v for k, v in kwargs.items() if k != "ssl_context"}
        with pytest.raises(ValueError, match="ssl_context"):
            AIOKafkaProducer(**without)
