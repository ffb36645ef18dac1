"""How an endpoint may be shown: never its user, password, query or fragment, which may carry a token.

Standard library only: the bootstrap uses it inside the launched process too.
"""

from __future__ import annotations

from urllib.parse import urlsplit

MASK = "****"


def mask_url(text: str) -> str:
    """The text with anything that may be a credential masked, even when it is not a valid URL.

    Everything before the last ``@`` (after any ``scheme://``) is user information, whatever
    it holds (``/``, spaces); everything after the first ``?`` or ``#`` is query or fragment.
    """
    for mark in "?#":
        cut = text.find(mark)
        if cut != -1:
            text = text[:cut] + mark + MASK
    at = text.rfind("@")
    if at != -1:
        scheme_end = text.find("://")
        start = scheme_end + 3 if -1 < scheme_end < at else 0
        text = text[:start] + MASK + text[at:]
    return text


def host_port(url: str) -> str:
    """``host:port`` of a URL, or the masked text if it has no host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return mask_url(url)
    if not parts.hostname:
        return mask_url(url)
    return f"{parts.hostname}:{port}" if port else parts.hostname
