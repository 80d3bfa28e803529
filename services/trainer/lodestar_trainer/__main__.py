from lodestar.cli.trainer_cmd import main

main()
