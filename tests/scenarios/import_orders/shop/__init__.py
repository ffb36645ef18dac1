"""A package whose __init__ imports the module that imports the app."""

from shop import checkout  # noqa: F401
