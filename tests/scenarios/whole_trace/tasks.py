"""The worker side: a task that queries PostgreSQL, uses Redis and calls the web app over HTTP."""

import os

import psycopg
import redis
import requests
from celery import Celery
from opentelemetry import baggage, trace

app = Celery("tasks", broker=os.environ["TEST_BROKER"])
app.conf.task_default_queue = os.environ["TEST_QUEUE"]


@app.task
def fetch(order: int) -> str:
    with psycopg.connect(os.environ["TEST_DATABASE"]) as connection:
        (total,) = connection.execute("SELECT %s::int + 1", (order,)).fetchone()
    redis.Redis.from_url(os.environ["TEST_REDIS"]).set(f"order:{order}", total)
    answer = requests.get(os.environ["TEST_WEB"] + "/ping", timeout=10).text
    # what a task does with baggage: here it only shows it arrived
    trace.get_current_span().set_attribute("test.tenant", str(baggage.get_baggage("tenant")))
    return answer
