"""One DSN selects chDB or a server; secrets and TLS come only from settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from lodestar_history.settings import HistorySettings
from lodestar_history.target import HistoryConfigError, parse_target


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("chdb:///var/lib/lodestar/history", {"kind": "chdb", "path": Path("/var/lib/lodestar/history")}),
        ("chdb:data/history", {"kind": "chdb", "path": Path("/work/data/history")}),
        ("http://clickhouse:8123/lodestar", {"kind": "http", "host": "clickhouse", "port": 8123, "secure": False}),
        (
            "http://lodestar@ch.internal/hist",
            {"kind": "http", "username": "lodestar", "database": "hist", "port": 8123},
        ),
        ("https://ch.example.com", {"kind": "http", "secure": True, "port": 8443, "database": "lodestar"}),
        ("HTTPS://u@ch:9443/", {"kind": "http", "secure": True, "port": 9443, "username": "u"}),
    ],
)
def test_dsn_forms(dsn: str, expected: dict[str, Any]) -> None:
    target = parse_target(HistorySettings(clickhouse_dsn=dsn), cwd=Path("/work"))
    assert {k: getattr(target, k) for k in expected} == expected


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("postgres://x/y", "unsupported scheme 'postgres'"),
        ("/just/a/path", "unsupported scheme ''"),
        ("chdb://memory", "name a directory"),
        ("chdb:", "no directory given"),
        ("chdb:///x?opt=1", "options are not accepted"),
        ("http://u:secret@ch:8123/db", "LODESTAR_HISTORY_CLICKHOUSE_PASSWORD, not the DSN"),
        ("https://ch:8443/db?verify=false", "options are not accepted"),
        ("http://ch:notaport/db", "bad port"),
        ("http://ch:8123/a/b", "just the database name"),
        ("http://ch:8123/bad-name", "not a plain identifier"),
        ("http:///db", "no host"),
    ],
)
def test_bad_dsns_are_refused_naming_the_problem(dsn: str, message: str) -> None:
    with pytest.raises(HistoryConfigError) as err:
        parse_target(HistorySettings(clickhouse_dsn=dsn))
    assert message in str(err.value)
    assert "secret" not in str(err.value)


def test_chdb_dsn_naming_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(HistoryConfigError, match="not a directory"):
        parse_target(HistorySettings(clickhouse_dsn=f"chdb://{tmp_path / 'f'}"))


def test_password_and_tls_come_from_settings_and_stay_out_of_descriptions() -> None:
    settings = HistorySettings(
        clickhouse_dsn="https://lodestar@ch:8443/lodestar",
        clickhouse_password=SecretStr("s3cret"),
        clickhouse_ca_cert="/etc/ssl/ca.pem",
        clickhouse_verify=True,
    )
    target = parse_target(settings)
    kwargs = target.client_kwargs("lodestar")
    assert kwargs["password"] == "s3cret"
    assert (kwargs["interface"], kwargs["verify"], kwargs["ca_cert"]) == ("https", True, "/etc/ssl/ca.pem")
    assert kwargs["autogenerate_session_id"] is False
    assert "s3cret" not in target.describe()
    assert "s3cret" not in repr(target)


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LODESTAR_HISTORY_CLICKHOUSE_DSN", "http://ch:8123/x")
    monkeypatch.setenv("LODESTAR_HISTORY_CLICKHOUSE_PASSWORD", "pw")
    monkeypatch.setenv("LODESTAR_HISTORY_RETENTION_DAYS", "7")
    settings = HistorySettings()
    assert parse_target(settings).client_kwargs(None)["password"] == "pw"
    assert settings.retention_params() == {"retention_days": 7, "model_retention_days": 365}


def test_mutual_tls_and_every_kwarg_is_a_parameter_of_clickhouse_connect() -> None:
    import inspect

    from clickhouse_connect.driver.httpclient import HttpClient

    settings = HistorySettings(
        clickhouse_dsn="https://lodestar@ch:8443/lodestar",
        clickhouse_password=SecretStr("s3cret"),
        clickhouse_ca_cert="/etc/ssl/ca.pem",
        clickhouse_client_cert="/etc/ssl/client.pem",
        clickhouse_client_key="/etc/ssl/client.key",
        clickhouse_verify=False,
    )
    kwargs = parse_target(settings).client_kwargs("lodestar")
    assert (kwargs["client_cert"], kwargs["client_cert_key"], kwargs["verify"]) == (
        "/etc/ssl/client.pem", "/etc/ssl/client.key", False,
    )  # fmt: skip
    # get_client passes everything but interface/host/port/database/username/password/settings
    # to the HTTP client: each must be one of its parameters.
    accepted = set(inspect.signature(HttpClient.__init__).parameters)
    passed = set(kwargs) - {"interface"}
    assert passed <= accepted, passed - accepted
    plain = parse_target(HistorySettings(clickhouse_dsn="http://ch:8123/x", clickhouse_ca_cert="/x")).client_kwargs(
        None
    )
    assert not {"verify", "ca_cert", "client_cert"} & set(plain)  # TLS options only for https
