"""``lodestar keys``: make client API keys for the gateway and the lines that configure them.

The gateway is configured with ``name:sha256hex`` lines only (``LODESTAR_GATEWAY_API_KEYS`` or
``LODESTAR_GATEWAY_API_KEYS_FILE``); the key itself goes to the client and is never stored.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer


def build() -> typer.Typer:
    app = typer.Typer(help="Client API keys for the gateway (stored as SHA-256 only).", no_args_is_help=True)

    @app.command()
    def new(name: Annotated[str, typer.Argument(help="key name: 1-64 of [A-Za-z0-9._-]")]) -> None:
        """Print a new random key (give it to the client) and its configuration line (stderr)."""
        from lodestar_gateway.auth import KeyConfigError, hash_line, new_key

        key = new_key()
        try:
            line = hash_line(name, key)
        except KeyConfigError as exc:
            typer.echo(f"lodestar keys new: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(key)
        typer.echo(f"add to LODESTAR_GATEWAY_API_KEYS or the keys file: {line}", err=True)

    @app.command("hash")
    def hash_(name: Annotated[str, typer.Argument(help="key name: 1-64 of [A-Za-z0-9._-]")]) -> None:
        """Read a key from stdin (not an argument: it would stay in the shell history) and print
        its configuration line ``name:sha256hex``."""
        from lodestar_gateway.auth import KeyConfigError, hash_line

        key = sys.stdin.readline().strip()
        if not key:
            typer.echo("lodestar keys hash: no key on stdin", err=True)
            raise typer.Exit(2)
        try:
            typer.echo(hash_line(name, key))
        except KeyConfigError as exc:
            typer.echo(f"lodestar keys hash: {exc}", err=True)
            raise typer.Exit(2) from None

    return app
