"""Subcommands of the ``jaxgreen`` command line, one module each."""
