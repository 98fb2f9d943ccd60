"""The version of jaxgreen (a leaf module: it imports nothing)."""

__version__ = "0.2.0"
