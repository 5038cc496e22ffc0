"""``peerwatch``'s old entry point, kept for scripts and tests that run ``cli.main``: the command
line is cli/app.py (root command, mounting, error mapping), cli/context.py (options, clock,
database) and one module per command group (cli/cmd_<name>.py)."""

from cli.app import main, run

__all__ = ["main", "run"]
