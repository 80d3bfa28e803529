"""``lodestar schemas``: export and check the JSON Schema files of the event models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lodestar_schemas.jsonschema_export import drifted, write_schemas

DEFAULT_DIR = Path("schemas/json-schema")


def build() -> typer.Typer:
    app = typer.Typer(help="Event schemas: JSON Schema export and drift check.", no_args_is_help=True)

    @app.command()
    def export(directory: Annotated[Path, typer.Option(help="output directory")] = DEFAULT_DIR) -> None:
        """Write one <topic>.schema.json per topic from the pydantic models."""
        for path in write_schemas(directory):
            typer.echo(str(path))

    @app.command()
    def check(directory: Annotated[Path, typer.Option(help="directory with committed schemas")] = DEFAULT_DIR) -> None:
        """Fail if the committed JSON Schema files differ from the models."""
        bad = drifted(directory)
        if bad:
            typer.echo(f"schema drift in {directory}: {', '.join(bad)}; run `lodestar schemas export`", err=True)
            raise typer.Exit(1)
        typer.echo("schemas up to date")

    return app
