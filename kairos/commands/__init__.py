"""One module per ``kairos`` subcommand: argument parsing into configs, then the run."""
