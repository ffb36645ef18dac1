"""Loaded with ``pytest -p user_order``: a user's import order, before Celery's tests import anything.

An application module first, then canvas names from ``celery``: the order that, under an
unsafe activation, ran the Celery instrumentation while ``celery.canvas`` was being found.
"""

import user_app  # noqa: F401
from celery import chain, chord, group  # noqa: F401
