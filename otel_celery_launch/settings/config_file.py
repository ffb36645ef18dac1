"""Parsing the config file with bounded work and memory, whatever it holds.

A config file is small and plain: at most ``MAX_BYTES`` (:mod:`~otel_celery_launch.settings.config_bytes`), nested at most
:data:`MAX_DEPTH` deep, no aliases (a few hundred bytes of them expand past a gigabyte),
no key given twice (the last one would win unseen), and a regular file (a FIFO would
block the read for ever).
"""

from __future__ import annotations

from typing import Any

import yaml

from otel_celery_launch.settings.config_bytes import ConfigFileError

MAX_DEPTH = 20


def parse_config(data: bytes, path: str) -> Any:
    """The parsed document; raises :class:`ConfigFileError` naming the file (and line) and the problem."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigFileError(path, "is not a UTF-8 text file") from None
    loader = None
    try:
        loader = _BoundedLoader(text)
        return loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        kind = "" if isinstance(error, _Refused) else "YAML syntax error: "
        raise ConfigFileError(where, f"{kind}{error.problem or error.context}") from None
    except yaml.reader.ReaderError as error:
        raise ConfigFileError(path, f"holds a character YAML does not allow (#x{error.character:04x}) at position {error.position}") from None
    except yaml.YAMLError as error:
        raise ConfigFileError(path, f"cannot be read: {type(error).__name__}") from None
    except ValueError:  # Python refuses to convert an integer of thousands of digits
        raise ConfigFileError(path, "holds a number too long to read") from None
    finally:
        if loader is not None:
            loader.dispose()


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that a config file may not hold."""


class _BoundedLoader(yaml.SafeLoader):
    # Like SafeLoader, but numbers stay text for the settings model to read: YAML 1.1 would
    # take 1:00:00 for 3600, 0o17 and 1_000 for numbers, and .inf for a duration.
    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if not tag.endswith((":int", ":float"))]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(problem=f"aliases (*{event.anchor}) are not allowed in a config file; write the value out",
                           problem_mark=event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                line = first.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: the constructor says so below
                continue
            if line != key_node.start_mark.line + 1:
                raise _Refused(problem=f"key {key!r} is given twice (first on line {line}); keep one",
                               problem_mark=key_node.start_mark)
        return super().construct_mapping(node, deep=deep)
