"""Instance lists: the YAML file, the short ID=URL form, and reloading a file that changes."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from lodestar_collector.config import (
    InstanceConfig,
    InstancesConfigError,
    parse_instance_list,
    parse_instances_yaml,
)
from lodestar_collector.reload import InstancesSource

TWO = """\
instances:
  - instance_id: h100-0
    url: http://127.0.0.1:8001/
    hardware: H100-SXM
    model: llama-3-8b
  - instance_id: a10g-0
    url: http://127.0.0.1:8002
"""


def test_yaml_mapping_form() -> None:
    got = parse_instances_yaml(TWO)
    assert got == (
        InstanceConfig(instance_id="h100-0", url="http://127.0.0.1:8001", hardware="H100-SXM", model="llama-3-8b"),
        InstanceConfig(instance_id="a10g-0", url="http://127.0.0.1:8002"),
    )


def test_yaml_list_form_and_empty_file() -> None:
    assert parse_instances_yaml("- {instance_id: x, url: 'https://h:1'}\n")[0].url == "https://h:1"
    assert parse_instances_yaml("") == ()
    assert parse_instances_yaml("instances: []") == ()


BAD_YAML = [
    pytest.param("instances: [", "not valid YAML", id="syntax"),
    pytest.param("42", "expected a list", id="scalar"),
    pytest.param("- {instance_id: x}", "instances.0.url", id="no-url"),
    pytest.param("- {instance_id: x, url: 'ftp://h'}", "instances.0.url", id="bad-scheme"),
    pytest.param("- {instance_id: x, url: 'http://h:99999'}", "instances.0.url", id="bad-port"),
    pytest.param("- {instance_id: 'a b', url: 'http://h'}", "instances.0.instance_id", id="space-in-id"),
    pytest.param("- {instance_id: x, url: 'http://h', gpu: A100}", "instances.0.gpu", id="unknown-field"),
    pytest.param("- {instance_id: x, url: 'http://h'}\n- {instance_id: x, url: 'http://g'}", "duplicate", id="dup"),
    pytest.param("instances: [{instance_id: x, url: 'http://h'}]\nextra: 1", "extra", id="unknown-key"),
]


@pytest.mark.parametrize(("text", "fragment"), BAD_YAML)
def test_bad_yaml_names_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(InstancesConfigError) as err:
        parse_instances_yaml(text, "fleet.yaml")
    assert "fleet.yaml" in str(err.value)
    assert fragment in str(err.value)


def test_short_form() -> None:
    got = parse_instance_list(["a=http://127.0.0.1:8001, b=http://127.0.0.1:8002/", "http://10.0.0.7:9000"])
    assert [(i.instance_id, i.url) for i in got] == [
        ("a", "http://127.0.0.1:8001"),
        ("b", "http://127.0.0.1:8002"),
        ("10.0.0.7:9000", "http://10.0.0.7:9000"),
    ]
    assert parse_instance_list([""]) == ()


@pytest.mark.parametrize(
    ("entries", "fragment"),
    [(["a=notaurl"], "entry 'a=notaurl'"), (["a=http://h:1,a=http://h:2"], "duplicate"), (["=http://h"], "")],
)
def test_short_form_errors(entries: list[str], fragment: str) -> None:
    if not fragment:  # an empty id falls back to host[:port]
        assert parse_instance_list(entries)[0].instance_id == "h"
        return
    with pytest.raises(InstancesConfigError, match=fragment):
        parse_instance_list(entries)


# --- reloading ---------------------------------------------------------------------------------


def _write(path: Path, text: str) -> None:
    """Write and move the mtime forward (a filesystem with coarse timestamps must still see it)."""
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000_000))


def _ids(instances: tuple[InstanceConfig, ...]) -> list[str]:
    return [i.instance_id for i in instances]


def test_reload_valid_change_then_invalid_change_keeps_the_old(tmp_path: Path) -> None:
    path = tmp_path / "instances.yaml"
    _write(path, TWO)
    seen: list[list[str]] = []
    source = InstancesSource(path, on_change=lambda inst: seen.append(_ids(inst)))
    assert _ids(source.load()) == ["h100-0", "a10g-0"]
    assert source.check() is False  # unchanged

    _write(path, TWO + "  - instance_id: l4-0\n    url: http://127.0.0.1:8003\n")
    assert source.check() is True
    assert _ids(source.current) == ["h100-0", "a10g-0", "l4-0"]

    _write(path, "instances:\n  - instance_id: broken\n")  # invalid: no url
    assert source.check() is False
    assert _ids(source.current) == ["h100-0", "a10g-0", "l4-0"]
    assert source.reload_errors == 1

    _write(path, "- {instance_id: a10g-0, url: 'http://127.0.0.1:8002'}\n")  # valid again: two left
    assert source.check() is True
    assert seen == [["h100-0", "a10g-0", "l4-0"], ["a10g-0"]]


def test_reload_vanished_file_keeps_the_old_until_it_returns(tmp_path: Path) -> None:
    path = tmp_path / "instances.yaml"
    _write(path, TWO)
    source = InstancesSource(path)
    source.load()
    path.unlink()
    assert source.check() is False
    assert _ids(source.current) == ["h100-0", "a10g-0"]
    _write(path, "[]")
    assert source.check() is True
    assert source.current == ()


def test_static_instances_join_the_file_and_may_not_collide(tmp_path: Path) -> None:
    path = tmp_path / "instances.yaml"
    _write(path, TWO)
    static = parse_instance_list(["s=http://127.0.0.1:9000"])
    source = InstancesSource(path, static)
    assert _ids(source.load()) == ["s", "h100-0", "a10g-0"]
    _write(path, "- {instance_id: s, url: 'http://127.0.0.1:9001'}\n")
    assert source.check() is False  # collision with a static id: rejected, old list kept
    assert _ids(source.current) == ["s", "h100-0", "a10g-0"]


def test_startup_with_a_bad_or_missing_file_fails(tmp_path: Path) -> None:
    with pytest.raises(InstancesConfigError, match="cannot read"):
        InstancesSource(tmp_path / "missing.yaml").load()
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {instance_id: x}")
    with pytest.raises(InstancesConfigError, match="url"):
        InstancesSource(bad).load()


async def test_run_polls_in_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "instances.yaml"
    _write(path, "[]")
    changed = asyncio.Event()
    source = InstancesSource(path, on_change=lambda _: changed.set())
    source.load()
    task = asyncio.create_task(source.run(poll_s=0.01))
    try:
        _write(path, TWO)
        await asyncio.wait_for(changed.wait(), timeout=10)
        assert _ids(source.current) == ["h100-0", "a10g-0"]
    finally:
        task.cancel()
