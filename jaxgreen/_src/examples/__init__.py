"""Small bundled models used by ``jaxgreen demo`` and the documentation."""
