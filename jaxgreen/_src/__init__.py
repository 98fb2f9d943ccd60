"""jaxgreen's internals: private, they can change in any release.

The public line is :mod:`jaxgreen` and its public submodules; docs/guides/development.md
maps what lives here.
"""
