"""cli: the `blueprint` command line, a thin edge over the core (JSON on stdout, notes on stderr)."""
