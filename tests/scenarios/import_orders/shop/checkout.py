from celery import chain

from shop.jobs import add

place_order = chain
__all__ = ["add", "place_order"]
