"""``python -m lodestar_router``: the same command as ``lodestar router``."""

from lodestar.cli.router_cmd import main

if __name__ == "__main__":
    main()
