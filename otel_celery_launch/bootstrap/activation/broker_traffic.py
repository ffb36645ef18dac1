"""Kombu's own Redis commands are the broker at work, not the program's: they make no spans.

With the redis instrumentation on, a worker on a Redis broker would export a root trace for
every poll, restore and acknowledgement (about one a second when idle), and each publish
would gain the LPUSH that the publish span already stands for. Each client kombu's Redis
transport makes (several a task: kombu makes one for nearly every command) gets methods of its
own that run its commands and pipelines with instrumentation suppressed, so that what runs
inside them (a Sentinel's master lookup, a credential provider's calls) is quiet too. They are
functions made once and bound to each client (nothing is made for a client but two bound
methods), and the client keeps its class.
The program's own Redis clients, and Celery's Redis result backend, are traced as usual.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import MethodType
from typing import Any


def quiet_kombu_redis() -> None:
    from kombu.transport import redis as transport
    from opentelemetry.context import attach, detach, get_current, set_value

    quiet_values = _suppressing_values()

    def quietly(method: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The class's method, looked up at each call (the instrumentation may come and go), run suppressed."""
        context = get_current()
        for key, value in quiet_values:
            context = set_value(key, value, context)
        token = attach(context)
        try:
            return _past_the_redis_instrumentation(method)(instance, *args, **kwargs)
        finally:
            detach(token)

    def execute_command(client: Any, *args: Any, **kwargs: Any) -> Any:
        return quietly(type(client).execute_command, client, args, kwargs)

    def pipeline(client: Any, *args: Any, **kwargs: Any) -> Any:
        pipe = type(client).pipeline(client, *args, **kwargs)
        pipe.execute = MethodType(execute, pipe)
        pipe.immediate_execute_command = MethodType(immediate_execute_command, pipe)
        return pipe

    def execute(pipe: Any, *args: Any, **kwargs: Any) -> Any:
        return quietly(type(pipe).execute, pipe, args, kwargs)

    def immediate_execute_command(pipe: Any, *args: Any, **kwargs: Any) -> Any:
        return quietly(type(pipe).immediate_execute_command, pipe, args, kwargs)

    create = transport.Channel._create_client

    @functools.wraps(create)
    def create_quiet_client(channel: Any, *args: Any, **kwargs: Any) -> Any:
        client = create(channel, *args, **kwargs)
        client.execute_command = MethodType(execute_command, client)
        client.pipeline = MethodType(pipeline, client)
        return client

    transport.Channel._create_client = create_quiet_client  # type: ignore[method-assign,assignment]


def _suppressing_values() -> list[tuple[str, Any]]:
    """What the instrumentation package's ``suppress_instrumentation()`` puts in the context, found once:
    set by hand at each command, it costs a fifth of entering that context manager (two nested generators)."""
    from opentelemetry.context import Context, attach, detach, get_current
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    token = attach(Context())
    try:
        with suppress_instrumentation():
            return list(get_current().items())
    finally:
        detach(token)


def _past_the_redis_instrumentation(call: Callable[..., Any]) -> Callable[..., Any]:
    """The method without the redis instrumentation's wrapper, where that is the outermost one.

    Releases before 0.60b0 ignore suppress_instrumentation and would trace the broker anyway;
    later ones, suppressed, only call through, so going past them changes nothing there.
    """
    wrapper = getattr(call, "_self_wrapper", None)  # a wrapt wrapper's function, as instrumentations install them
    if str(getattr(wrapper, "__module__", "")).startswith("opentelemetry.instrumentation.redis"):
        return getattr(call, "__wrapped__", call)
    return call
