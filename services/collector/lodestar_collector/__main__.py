"""``python -m lodestar_collector``: the same command as ``lodestar collector``."""

from lodestar.cli.collector_cmd import main

if __name__ == "__main__":
    main()
