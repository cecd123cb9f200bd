"""The subcommands of mlpbench, one module each."""
