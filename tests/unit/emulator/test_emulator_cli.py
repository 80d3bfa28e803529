"""`lodestar emulate` rejects bad options with a clear message and a non-zero exit, no traceback.

(A busy port needs a real listener; that case runs as a process in the integration tests.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lodestar.cli.app import build_app


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--cluster", "no-such-cluster"], "unknown cluster 'no-such-cluster'"),
        (["--cluster", "/nonexistent/fleet.yaml"], "cannot read cluster file"),
        (["--hardware", "B300"], "--hardware: unknown hardware 'B300'"),
        (["--hardware", "H100-SXM", "--model", "gpt-9"], "--model: unknown model 'gpt-9'"),
        (["--cluster", "mini-hetero2", "--hardware", "A10G"], "not both"),
        ([], "give --cluster"),
        (["--hardware", "A10G", "--time-scale", "0.5"], "invalid --time-scale"),
        (["--hardware", "A10G", "--default-max-tokens", "0"], "invalid --default-max-tokens"),
        (["--cluster", "hetero-mix8", "--port", "65530"], "need ports up to 65537 > 65535"),
    ],
)
def test_bad_options_exit_2_with_a_message(args: list[str], fragment: str) -> None:
    result = CliRunner().invoke(build_app(), ["emulate", *args])
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_port_out_of_range_is_a_usage_error() -> None:
    result = CliRunner().invoke(build_app(), ["emulate", "--hardware", "A10G", "--port", "70000"])
    assert result.exit_code == 2
    assert "--port" in result.stderr


def test_bad_cluster_file_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nmodel: llama-3-8b\ngroups:\n  - hardware: H100-SXM\n    count: 0\n")
    result = CliRunner().invoke(build_app(), ["emulate", "--cluster", str(path)])
    assert result.exit_code == 2
    assert "groups.0.count" in result.stderr
