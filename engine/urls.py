"""Server URLs as they may be shown: credentials (`user:password@`) never leave Hearth.

HEARTH_ENGINE_URLS may carry Basic credentials for a proxy in front of the servers.
Every URL that is logged, shown in `/status` or put into an error goes through
`redact_url` first; `url_password` lets the log filter scrub the password wherever
else it might turn up (a library's own message, a traceback).
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "***"
CREDENTIALS = re.compile(r"(://)[^/@\s'\"]+@")  # the userinfo of any URL inside some text


def redact_url(url: str) -> str:
    """`url` with any `user:password@` replaced by `***@`; other URLs unchanged.

    Never raises: text that does not parse as a URL is cut at its last `@` instead."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError:
        return REDACTED + "@" + url.rsplit("@", 1)[1] if "@" in url else url
    if "@" not in netloc:
        return url
    host = netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"{REDACTED}@{host}", parts.path, parts.query, parts.fragment))


def url_password(url: str) -> str | None:
    """The password (else the user name) a URL carries, for the log filter; None without one."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return parts.password or parts.username or None


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """(`url` without its `user:password@`, the Basic credentials it carried or None): the
    client is given them apart, so no URL it logs or puts in an error carries them."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    host = parts.netloc.rsplit("@", 1)[1]
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare, (unquote(parts.username or ""), unquote(parts.password or ""))


def scrub_credentials(text: str) -> str:
    """`text` (an error message, a reason) with every URL's `user:password@` replaced by `***@`."""
    return CREDENTIALS.sub(rf"\1{REDACTED}@", text)
