"""A config file's bytes, read with bounded work and memory: a regular file of at most :data:`MAX_BYTES`.

Apart from the YAML parsing (:mod:`otel_celery_launch.settings.config_file`), so that a start that
only compares the file with an earlier one (:mod:`otel_celery_launch.settings.cache`) imports no YAML.
The file is opened without blocking and checked through its descriptor: a FIFO swapped in after a
check by name could block the read for ever.
"""

from __future__ import annotations

import os
import stat

MAX_BYTES = 1 << 20


class ConfigFileError(Exception):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where
        self.message = message


def read_bounded(path: str) -> bytes:
    """The file's bytes; raises :class:`ConfigFileError` naming the file and the problem."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigFileError(path, "config file not found") from None
    except PermissionError:
        raise ConfigFileError(path, "config file cannot be read (permission denied)") from None
    except IsADirectoryError:
        raise ConfigFileError(path, "is a directory, not a config file") from None
    except OSError as error:
        raise ConfigFileError(path, f"cannot be read ({error.strerror})") from None
    try:
        found = os.fstat(descriptor)
        if stat.S_ISDIR(found.st_mode):
            raise ConfigFileError(path, "is a directory, not a config file")
        if not stat.S_ISREG(found.st_mode):
            raise ConfigFileError(path, "is not a regular file (a pipe, a device or a socket); name a file")
        if found.st_size > MAX_BYTES:
            raise ConfigFileError(path, f"is {found.st_size} bytes; a config file may hold at most {MAX_BYTES} bytes")
        data = b""
        while len(data) <= MAX_BYTES and (chunk := os.read(descriptor, MAX_BYTES + 1 - len(data))):
            data += chunk
    except OSError as error:
        raise ConfigFileError(path, f"cannot be read ({error.strerror})") from None
    finally:
        os.close(descriptor)
    if len(data) > MAX_BYTES:
        raise ConfigFileError(path, f"holds more than {MAX_BYTES} bytes")
    return data
