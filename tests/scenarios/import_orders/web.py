"""A module that imports the app while it is itself being imported, and builds a canvas then."""

import tasks
from celery import group

warmup = group(tasks.add.s(0, 0))
