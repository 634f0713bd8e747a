"""`VELOZ_DATABASE_URL`: which store it names, and how to show it without its password."""

import re
from urllib.parse import urlsplit, urlunsplit

SQLITE_PREFIX = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql", "postgres")
_QUERY_PASSWORD = re.compile(r"((?:^|&)password=)[^&]*", re.IGNORECASE)


class DatabaseUrlError(ValueError):
    pass


def dialect_of(url: str) -> str:
    if url.startswith(SQLITE_PREFIX):
        if not url[len(SQLITE_PREFIX) :]:
            raise DatabaseUrlError("a sqlite URL needs a path: sqlite:///./data/veloz.db")
        return "sqlite"
    if urlsplit(url).scheme in POSTGRES_SCHEMES:
        return "postgres"
    raise DatabaseUrlError(
        f"expected sqlite:///<path> or postgresql://user@host/db, got {redact(url)!r}"
    )


def sqlite_path(url: str) -> str:
    """`sqlite:///./data/veloz.db` -> `./data/veloz.db`; `sqlite:////var/x.db` -> `/var/x.db`."""
    return url[len(SQLITE_PREFIX) :]


def redact(url: str) -> str:
    """The URL with any password (in the user part or a `password=` parameter) as ***.
    Works on the text, so multi-host and IPv6 URLs come out as they went in."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    netloc = parts.netloc
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:***@{hosts}"
    query = _QUERY_PASSWORD.sub(r"\1***", parts.query)
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # urlunsplit would also rewrite `sqlite:///x` as `sqlite:/x`
    return urlunsplit(parts._replace(netloc=netloc, query=query))
