"""The ``lodestar`` command line: one typer app, one module per command group."""
