"""Client API keys: hash lines parse strictly (errors name the line, never echo a value), a key
is recognised by its hash only, every configured hash is compared, headers as OpenAI clients
send them."""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path
from typing import Any

import pytest

from lodestar_gateway import auth
from lodestar_gateway.auth import KeyConfigError, KeyTable, hash_line, new_key, presented_key

ALICE_KEY = "lsk-alice-0123456789abcdefghijklmnopqrstuvwxyzABCD"
BOB_KEY = "lsk-bob-0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
ALICE = hash_line("alice", ALICE_KEY)
BOB = hash_line("bob", BOB_KEY)


def test_new_keys_are_long_random_and_hash_to_a_line() -> None:
    keys = {new_key() for _ in range(100)}
    assert len(keys) == 100
    for key in keys:
        assert re.fullmatch(r"lsk-[A-Za-z0-9_\-]{43}", key)
    line = hash_line("svc-1", "k")
    assert line == "svc-1:" + hashlib.sha256(b"k").hexdigest()


@pytest.mark.parametrize(
    ("case", "lines", "names"),
    [
        ("one", [ALICE], ("alice",)),
        ("two lines", [ALICE, BOB], ("alice", "bob")),
        ("comma separated", [f"{ALICE}, {BOB}"], ("alice", "bob")),
        ("comments and blanks", ["# team keys", "", f"  {ALICE}  # rotated 2024", "   "], ("alice",)),
        ("upper-case hex", [ALICE.upper().replace("ALICE", "alice")], ("alice",)),
        ("empty", [], ()),
    ],
)
def test_hash_lines_parse(case: str, lines: list[str], names: tuple[str, ...]) -> None:
    assert KeyTable.parse(lines, "test").names == names, case


@pytest.mark.parametrize(
    ("case", "lines", "fragment"),
    [
        ("no colon", ["alice"], "test line 1: expected name:sha256hex"),
        ("empty name", [":" + "0" * 64], "line 1: expected name:sha256hex"),
        ("bad name", ["al ice:" + "0" * 64], "expected name:sha256hex"),
        ("raw key pasted", [f"alice:{ALICE_KEY}"], "needs the SHA-256 of the key (64 hex digits)"),
        ("short hex", ["alice:abcd"], "64 hex digits"),
        ("duplicate name", [ALICE, "alice:" + "0" * 64], "line 2: key name 'alice' appears twice"),
        ("duplicate hash", [ALICE, "carol:" + ALICE.split(":")[1]], "line 2: key 'carol' has the same hash"),
    ],
)
def test_bad_hash_lines_name_the_line_and_never_the_value(case: str, lines: list[str], fragment: str) -> None:
    with pytest.raises(KeyConfigError) as err:
        KeyTable.parse(lines, "test")
    assert fragment in str(err.value), case
    assert ALICE_KEY not in str(err.value)


@pytest.mark.parametrize(
    ("case", "key", "name"),
    [
        ("alice", ALICE_KEY, "alice"),
        ("bob", BOB_KEY, "bob"),
        ("wrong key", ALICE_KEY + "x", None),
        ("prefix of a key", ALICE_KEY[:-1], None),
        ("the hash itself", ALICE.split(":")[1], None),
        ("empty", "", None),
        ("none", None, None),
        ("absurdly long", "k" * 10_000, None),
        ("not utf-8 encodable", "\udcff", None),
    ],
)
def test_identify(case: str, key: str | None, name: str | None) -> None:
    table = KeyTable.parse([ALICE, BOB], "test")
    assert table.identify(key) == name, case


def test_identify_compares_every_hash_even_after_a_match(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    compare = hmac.compare_digest  # the real one: the wrapper below replaces the module's name

    def counting(a: Any, b: Any) -> bool:
        calls.append(b)
        return compare(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    lines = [hash_line(f"k{i}", f"key-{i}") for i in range(8)]
    table = KeyTable.parse(lines, "test")
    for presented in ("key-0", "key-7", "nobody"):
        calls.clear()
        table.identify(presented)
        assert len(calls) == 8, presented


@pytest.mark.parametrize(
    ("case", "authorization", "api_key", "expected"),
    [
        ("bearer", "Bearer abc", None, "abc"),
        ("bearer lower-case", "bearer abc", None, "abc"),
        ("bearer extra spaces", "  Bearer   abc  ", None, "abc"),
        ("api-key header", None, "abc", "abc"),
        ("bearer wins", "Bearer abc", "def", "abc"),
        ("basic scheme ignored", "Basic YWJjOmRlZg==", None, None),
        ("basic scheme, api-key used", "Basic YWJj", "def", "def"),
        ("bearer without value", "Bearer ", None, None),
        ("nothing", None, None, None),
        ("blank api-key", None, "   ", None),
    ],
)
def test_presented_key(case: str, authorization: str | None, api_key: str | None, expected: str | None) -> None:
    assert presented_key(authorization, api_key) == expected, case


def test_load_merges_env_and_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# keys\n{BOB}\n")
    table = KeyTable.load(ALICE, path)
    assert table.names == ("alice", "bob")
    assert table.identify(BOB_KEY) == "bob"
    assert len(KeyTable.load(None, None)) == 0
    assert len(KeyTable.load("", None)) == 0


@pytest.mark.parametrize(
    ("case", "inline", "file_text", "fragment"),
    [
        ("same name in env and file", ALICE, ALICE.replace("alice", "alice") + "\n", "appears twice"),
        ("bad file line", None, f"{ALICE}\nbroken\n", "LODESTAR_GATEWAY_API_KEYS_FILE"),
        ("bad env entry", "broken", "", "LODESTAR_GATEWAY_API_KEYS line 1"),
        ("missing file", None, None, "No such file"),
    ],
)
def test_load_errors_name_the_variable(
    tmp_path: Path, case: str, inline: str | None, file_text: str | None, fragment: str
) -> None:
    path = tmp_path / "keys"
    if file_text is not None:
        path.write_text(file_text)
    with pytest.raises(KeyConfigError) as err:
        KeyTable.load(inline, path)
    assert fragment in str(err.value), case


def test_bad_key_names_are_refused_when_hashing() -> None:
    with pytest.raises(KeyConfigError, match="key name"):
        hash_line("bad name", "k")
