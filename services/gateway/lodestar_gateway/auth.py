"""Client API keys: configured as ``name:sha256hex`` lines, never as the keys themselves.

A key is ``lsk-`` + 43 url-safe characters (32 random bytes, :func:`new_key`); the gateway
keeps only its SHA-256. A fast hash is enough here: a slow KDF (bcrypt, scrypt, argon2) makes
guessing a *low-entropy* password from its hash expensive, but a 256-bit random key cannot be
guessed from its SHA-256 at any speed, and a KDF would cost tens of milliseconds per request.
The hashes are still not published: with them, anyone could check guesses offline.

:meth:`KeyTable.identify` hashes the presented key once and compares the digest with *every*
configured digest with :func:`hmac.compare_digest`, without stopping at a match, so its time
depends on the number of configured keys and the presented key's length, never on how much
of a configured key (or hash) it matches.

Clients send the key as OpenAI's clients do (``Authorization: Bearer <key>``) or as Azure
OpenAI's do (``api-key: <key>``); :func:`presented_key` takes either.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

KEY_PREFIX = "lsk-"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_MAX_KEY_CHARS = 512  # longer header values are not keys (and are not hashed)


class KeyConfigError(ValueError):
    """A hash line is unusable; the message names its origin and line, never a key."""


def new_key() -> str:
    """A fresh key: ``lsk-`` + 32 random bytes, url-safe base64 (256 bits of entropy)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def hash_line(name: str, key: str) -> str:
    """The configuration line for ``key``: ``name:sha256hex``."""
    if not _NAME.fullmatch(name):
        raise KeyConfigError(f"key name {name!r}: use 1-64 characters of [A-Za-z0-9._-], starting alphanumeric")
    return f"{name}:{key_digest(key).hex()}"


@dataclass(frozen=True, slots=True)
class KeyTable:
    """Key name → SHA-256 digest of the key. Names are unique; so are digests."""

    digests: tuple[tuple[str, bytes], ...]

    def __len__(self) -> int:
        return len(self.digests)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.digests)

    def identify(self, key: str | None) -> str | None:
        """The name of the configured key ``key`` is, or None (no key, unknown key)."""
        if key is None or not key or len(key) > _MAX_KEY_CHARS:
            return None
        digest = key_digest(key)
        found: str | None = None
        for name, expected in self.digests:
            if hmac.compare_digest(digest, expected):
                found = name  # no break: every digest is compared, whatever matches
        return found

    @classmethod
    def parse(cls, lines: Iterable[str], origin: str) -> KeyTable:
        return cls(()).extended(lines, origin)

    def extended(self, lines: Iterable[str], origin: str) -> KeyTable:
        """This table plus lines of ``name:sha256hex``; blank lines and ``#`` comments are
        skipped, commas also separate entries (one environment variable can hold several).
        KeyConfigError names the origin and line of a bad entry, a name or a hash seen before."""
        digests = list(self.digests)
        names = {name for name, _ in digests}
        seen = {digest for _, digest in digests}
        for number, line in enumerate(lines, start=1):
            for entry in line.split("#", 1)[0].split(","):
                entry = entry.strip()
                if not entry:
                    continue
                name, sep, hexdigest = entry.partition(":")
                where = f"{origin} line {number}"
                if not sep or not _NAME.fullmatch(name.strip()):
                    raise KeyConfigError(
                        f"{where}: expected name:sha256hex with a name of 1-64 characters of [A-Za-z0-9._-] "
                        "(make lines with `lodestar keys new`)"
                    )
                name, hexdigest = name.strip(), hexdigest.strip().lower()
                if not _HEX_DIGEST.fullmatch(hexdigest):
                    # Never echo the value: it may be a key pasted by mistake.
                    raise KeyConfigError(
                        f"{where}: key {name!r} needs the SHA-256 of the key (64 hex digits), not the key itself "
                        "(`lodestar keys hash` prints it)"
                    )
                digest = bytes.fromhex(hexdigest)
                if name in names:
                    raise KeyConfigError(f"{where}: key name {name!r} appears twice")
                if digest in seen:
                    raise KeyConfigError(f"{where}: key {name!r} has the same hash as an earlier key")
                names.add(name)
                seen.add(digest)
                digests.append((name, digest))
        return KeyTable(tuple(digests))

    @classmethod
    def load(cls, inline: str | None, path: Path | None) -> KeyTable:
        """The keys of ``LODESTAR_GATEWAY_API_KEYS`` and of ``LODESTAR_GATEWAY_API_KEYS_FILE``
        together (an empty table: authentication is off)."""
        table = cls(())
        if inline:
            table = table.extended(inline.splitlines(), "LODESTAR_GATEWAY_API_KEYS")
        if path is not None:
            origin = f"LODESTAR_GATEWAY_API_KEYS_FILE {str(path)!r}"
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise KeyConfigError(f"{origin}: {exc}") from None
            table = table.extended(text.splitlines(), origin)
        return table


def presented_key(authorization: str | None, api_key: str | None) -> str | None:
    """The key a client sent: ``Authorization: Bearer <key>`` (scheme case-insensitive), else
    the ``api-key`` header; None if neither carries one."""
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if api_key and api_key.strip():
        return api_key.strip()
    return None
