"""Kombu's own Redis commands are the broker at work, not the program's: they make no spans.

With the redis instrumentation on, a worker on a Redis broker would export a root trace for
every poll, restore and acknowledgement (about one a second when idle), and each publish
would gain the LPUSH that the publish span already stands for. The clients kombu's Redis
transport makes run their commands with instrumentation suppressed; the program's own Redis
clients, and Celery's Redis result backend, are traced as usual.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


def quiet_kombu_redis() -> None:
    from kombu.transport import redis as transport

    create = transport.Channel._create_client

    @functools.wraps(create)
    def create_quiet_client(channel: Any, *args: Any, **kwargs: Any) -> Any:
        client = create(channel, *args, **kwargs)
        client.execute_command = _suppressed(client.execute_command)
        pipeline = client.pipeline

        def quiet_pipeline(*args: Any, **kwargs: Any) -> Any:
            pipe = pipeline(*args, **kwargs)
            pipe.execute = _suppressed(pipe.execute)
            pipe.immediate_execute_command = _suppressed(pipe.immediate_execute_command)
            return pipe

        client.pipeline = quiet_pipeline
        return client

    transport.Channel._create_client = create_quiet_client  # type: ignore[method-assign,assignment]


def _suppressed(call: Callable[..., Any]) -> Callable[..., Any]:
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    call = _past_the_redis_instrumentation(call)

    def quiet(*args: Any, **kwargs: Any) -> Any:
        with suppress_instrumentation():
            return call(*args, **kwargs)

    return quiet


def _past_the_redis_instrumentation(call: Callable[..., Any]) -> Callable[..., Any]:
    """The method without the redis instrumentation's wrapper, where that is the outermost one.

    Releases before 0.60b0 ignore suppress_instrumentation and would trace the broker anyway;
    later ones, suppressed, only call through, so going past them changes nothing there.
    """
    wrapper = getattr(call, "_self_wrapper", None)  # a wrapt wrapper's function, as instrumentations install them
    if str(getattr(wrapper, "__module__", "")).startswith("opentelemetry.instrumentation.redis"):
        return getattr(call, "__wrapped__", call)
    return call
