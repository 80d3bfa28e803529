"""``python -m lodestar`` is the ``lodestar`` command."""

from lodestar.cli.app import main

main()
