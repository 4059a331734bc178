"""The ``phone-agent`` subcommands, one module per group; ``cli.py`` assembles them.

Commands sit at the top of the layers (they may use any package); heavy modules are imported inside
the command functions so ``phone-agent --help`` stays quick.
"""
