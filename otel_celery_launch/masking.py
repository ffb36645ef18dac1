"""How an endpoint may be shown: never its user, password, query or fragment, which may carry a token.

Standard library only: the bootstrap uses it inside the launched process too.
"""

from __future__ import annotations

from urllib.parse import urlsplit

MASK = "****"


def mask_url(text: str) -> str:
    """The text with anything that may be a credential masked, even when it is not a valid URL.

    Everything before the last ``@`` (after any ``scheme://``) is user information, whatever
    it holds (``/``, ``?``, ``#``, spaces); after it, everything from the first ``?`` or
    ``#`` is query or fragment.
    """
    scheme_end = text.find("://")
    start = scheme_end + 3 if scheme_end != -1 else 0
    at = text.rfind("@")
    if at >= start:
        text = text[:start] + MASK + text[at:]
        start += len(MASK)
    for mark in "?#":
        cut = text.find(mark, start)
        if cut != -1:
            text = text[:cut] + mark + MASK
    return text


def host_port(url: str) -> str:
    """``host:port`` of a URL, or the masked text if it has no host."""
    masked = mask_url(url)
    try:
        parts = urlsplit(masked)
        port = parts.port
    except ValueError:
        return masked
    if not parts.hostname:
        return masked
    return f"{parts.hostname}:{port}" if port else parts.hostname
