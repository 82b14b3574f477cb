"""The ``xmc`` command."""
