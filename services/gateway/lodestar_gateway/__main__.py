"""``python -m lodestar_gateway``: the same command as ``lodestar gateway``."""

from lodestar.cli.gateway_cmd import main

if __name__ == "__main__":
    main()
