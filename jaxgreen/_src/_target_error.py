"""The error of a target that cannot be compiled for (``jaxgreen.targets.TargetError``).

Its own module so that target parsing, device creation and progress reporting all raise
and catch the one class without importing each other.
"""

from __future__ import annotations


class TargetError(ValueError):
  """A target string that cannot be compiled for, with the fix in the message."""

  __module__ = "jaxgreen"  # its public home, as tracebacks and reprs show it
