"""The jaxpr counter: an interpreter that walks equations and per-primitive rules."""

from jaxgreen._src.jaxpr import rules as _rules  # noqa: F401  (registers every rule)
