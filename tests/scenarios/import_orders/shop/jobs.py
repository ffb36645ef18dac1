from tasks import add  # noqa: F401
