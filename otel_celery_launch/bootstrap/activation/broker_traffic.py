"""Kombu's own Redis commands are the broker at work, not the program's: they make no spans.

With the redis instrumentation on, a worker on a Redis broker would export a root trace for
every poll, restore and acknowledgement (about one a second when idle), and each publish
would gain the LPUSH that the publish span already stands for. Each client kombu's Redis
transport makes (several a task: kombu makes one for nearly every command), each pipeline of
such a client, each of kombu's pools and the connections they make become, by their class, a
quiet subclass of what they are (made once per class and kept no longer than it; named as it
is, copied and pickled as it would be): commands, pipelines and connects run with
instrumentation suppressed, so what runs inside them (a Sentinel's master lookup as a
connection opens, a credential provider's calls) is quiet too, and they go past the redis
instrumentation's wrapper. A class swap keeps nothing on the object: no reference cycle delays
its freeing (and the return of its connection to the pool). The program's own Redis clients,
and Celery's Redis result backend, are traced as usual.
"""

from __future__ import annotations

import copyreg
import functools
import weakref
from collections.abc import Callable
from typing import Any

_CLIENT, _PIPELINE, _POOL, _CONNECTION = "client", "pipeline", "pool", "connection"  # what a quiet class is made of
_QUIET = {_CLIENT: ("execute_command",), _PIPELINE: ("execute", "immediate_execute_command"), _POOL: (), _CONNECTION: ("connect",)}
_MAKES = {_CLIENT: ("pipeline", _PIPELINE), _POOL: ("make_connection", _CONNECTION)}
_NEWOBJ = getattr(copyreg, "__newobj__")  # how an object is made again by default (protocol 2 and later)
_RECONSTRUCTOR = getattr(copyreg, "_reconstructor")  # and by protocols 0 and 1
_MADE: dict[str, weakref.WeakKeyDictionary[type, Any]] = {kind: weakref.WeakKeyDictionary() for kind in _QUIET}  # kind: class -> quiet subclass


def quiet_kombu_redis() -> None:
    from kombu.transport import redis as transport

    _quietly_running()  # its imports now, on the thread importing kombu: never later on a background thread that makes a client
    create = transport.Channel._create_client

    @functools.wraps(create)
    def create_quiet_client(channel: Any, *args: Any, **kwargs: Any) -> Any:
        client = create(channel, *args, **kwargs)
        client.__class__ = _quiet(client.__class__, _CLIENT)
        return client

    transport.Channel._create_client = create_quiet_client  # type: ignore[method-assign,assignment]
    for channel_class in (transport.Channel, getattr(transport, "SentinelChannel", None)):
        if channel_class is not None and "_get_pool" in vars(channel_class):  # each that makes its own pools
            _quiet_pools_of(channel_class)


def _quiet_pools_of(channel_class: type) -> None:
    """Connections that kombu opens itself, outside any command (to listen for fanout messages), connect quietly too."""
    get_pool = vars(channel_class)["_get_pool"]

    @functools.wraps(get_pool)
    def get_quiet_pool(channel: Any, *args: Any, **kwargs: Any) -> Any:
        pool = get_pool(channel, *args, **kwargs)
        pool.__class__ = _quiet(pool.__class__, _POOL)
        return pool

    channel_class._get_pool = get_quiet_pool  # type: ignore[attr-defined]


def _quiet(cls: Any, kind: str) -> Any:
    """The quiet subclass of ``cls``, made once: kept while ``cls`` lives, or, for a class made in a function
    (kombu makes a connection class for each channel), while objects of it do, so that neither outlives its use."""
    known = _MADE[kind].get(cls)
    made = known() if isinstance(known, weakref.ref) else known
    if made is None:
        made = _made_quiet(cls, kind)
        _MADE[kind][cls] = weakref.ref(made) if "<locals>" in cls.__qualname__ else made
    return made


def _made_quiet(cls: Any, kind: str) -> type:
    """``cls`` with its methods of ``kind`` run quietly; named as ``cls``, copied as a quiet one, pickled as ``cls`` would be."""
    quiet = _quietly_running()

    def reduce_ex(self: Any, protocol: int) -> Any:
        reduced = object.__reduce_ex__(self, protocol)
        if protocol >= 2 and reduced[0] is _NEWOBJ:  # not this class by name (it is not where its name says)
            return (_new_quiet, (cls, kind), *reduced[2:])
        if reduced[0] is _RECONSTRUCTOR and reduced[1][0] is type(self):  # protocols 0 and 1: as ``cls``, which they name
            return (_RECONSTRUCTOR, (cls, *reduced[1][1:]), *reduced[2:])
        return reduced

    namespace: dict[str, Any] = {name: quiet(cls, name) for name in _QUIET[kind]}
    if kind in _MAKES:  # a client's pipelines, a pool's connections: quiet too
        maker, made_kind = _MAKES[kind]
        namespace[maker] = _quieting_what_it_makes(cls, maker, made_kind)
    namespace.update(__module__=cls.__module__, __qualname__=cls.__qualname__, __reduce_ex__=reduce_ex)
    return type(cls.__name__, (cls,), namespace)


def _quieting_what_it_makes(cls: Any, maker: str, kind: str) -> Callable[..., Any]:
    def make(self: Any, *args: Any, **kwargs: Any) -> Any:
        made = getattr(cls, maker)(self, *args, **kwargs)
        made.__class__ = _quiet(made.__class__, kind)
        return made

    return make


def _new_quiet(cls: type, kind: str) -> Any:
    quiet: Any = _quiet(cls, kind)
    return quiet.__new__(quiet)


@functools.cache
def _quietly_running() -> Callable[[type, str], Callable[..., Any]]:
    """Makes methods that run ``cls.name`` with instrumentation suppressed, past the redis instrumentation's wrapper.

    The suppression is what the package's ``suppress_instrumentation()`` puts in the context, found
    once and set by hand: a fifth of the cost of entering that context manager (two nested generators).
    Where nothing else is in the context (a worker's consumer, between tasks), the suppressed context
    is the same each time, made once; a quiet call inside it (a pipeline's connection, checked to be
    connected at each use) runs as it is.
    """
    from opentelemetry.context import Context, attach, detach, get_current, set_value
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    token = attach(Context())
    try:
        with suppress_instrumentation():
            suppressed = get_current()
    finally:
        detach(token)
    values = list(suppressed.items())

    def quiet(cls: type, name: str) -> Callable[..., Any]:
        def run_quietly(self: Any, *args: Any, **kwargs: Any) -> Any:
            method = _past_the_redis_instrumentation(getattr(cls, name))  # looked up at each call: the instrumentation may come and go
            context = get_current()
            if context is suppressed:  # inside another quiet call (a pipeline's connection connecting)
                return method(self, *args, **kwargs)
            if context:
                for key, value in values:
                    context = set_value(key, value, context)
            token = attach(context or suppressed)
            try:
                return method(self, *args, **kwargs)
            finally:
                detach(token)

        return run_quietly

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
