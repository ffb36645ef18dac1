"""Kombu's own Redis commands are the broker at work, not the program's: they make no spans.

With the redis instrumentation on, a worker on a Redis broker would export a root trace for
every poll, restore and acknowledgement (about one a second when idle), and each publish
would gain the LPUSH that the publish span already stands for. Each client kombu's Redis
transport makes (several a task: kombu makes one for nearly every command) becomes, by its
class, a quiet subclass of what it is, made once per class: its commands and pipelines go past
the redis instrumentation's wrapper, or run with instrumentation suppressed where that wrapper
is not the outermost one. The program's own Redis clients, and Celery's Redis result backend,
are traced as usual.
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
        client.__class__ = _quiet_client_class(type(client))
        return client

    transport.Channel._create_client = create_quiet_client  # type: ignore[method-assign,assignment]


@functools.cache
def _quiet_client_class(cls: type) -> type:
    def pipeline(self: Any, *args: Any, **kwargs: Any) -> Any:
        pipe = cls.pipeline(self, *args, **kwargs)  # type: ignore[attr-defined]
        pipe.__class__ = _quiet_pipeline_class(type(pipe))
        return pipe

    return type(cls.__name__, (cls,), {"execute_command": _quiet(cls, "execute_command"), "pipeline": pipeline, "__module__": __name__})


@functools.cache
def _quiet_pipeline_class(cls: type) -> type:
    names = ("execute", "immediate_execute_command")
    return type(cls.__name__, (cls,), {**{name: _quiet(cls, name) for name in names}, "__module__": __name__})


def _quiet(cls: type, name: str) -> Callable[..., Any]:
    """``cls.name`` untraced, looked up at each call: the instrumentation may be applied or removed at any time."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    def quiet(self: Any, *args: Any, **kwargs: Any) -> Any:
        method = getattr(cls, name)
        inner = _past_the_redis_instrumentation(method)
        if inner is not method:  # no span can start: no need to say so
            return inner(self, *args, **kwargs)
        with suppress_instrumentation():
            return method(self, *args, **kwargs)

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
