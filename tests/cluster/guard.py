"""Before any load: every URL the stack and the load generator use must lead to a host of
this run. A URL is any environment value with a scheme and a host (database, broker, object
store, provider APIs, the public URL) plus the webhook endpoints and the intakes the load is
sent to; each host name is resolved and every address it resolves to must be one of the
run's namespaces. Anything else (loopback, the machine's own address, a name that does not
resolve) stops the run before a single request leaves.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import urlsplit

from tests.cluster.errors import ClusterError

Resolver = Callable[[str], list[str]]
# An s3:// URL names a bucket, not a host: its traffic goes to the endpoint setting beside it,
# which must then be given (without it boto3 would go to AWS).
BUCKET_SCHEME, ENDPOINT_SETTING = "s3", "LEADLINE_S3_ENDPOINT_URL"


def resolve(host: str) -> list[str]:
    try:
        answers = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    return sorted({str(answer[4][0]) for answer in answers})


def urls_in(values: Mapping[str, str]) -> dict[str, str]:
    """The values that are URLs with a host, by where they came from."""
    found = {}
    for name, value in values.items():
        parts = urlsplit(value)
        if parts.scheme != BUCKET_SCHEME and parts.hostname and "://" in value:
            found[name] = value
    return found


def endpointless_buckets(values: Mapping[str, str]) -> list[str]:
    """Bucket URLs in a source that has no S3 endpoint of its own."""
    if any(name.endswith(ENDPOINT_SETTING) for name in values):
        return []
    return [
        f"{name}: a bucket without {ENDPOINT_SETTING}"
        for name, value in values.items()
        if urlsplit(value).scheme == BUCKET_SCHEME
    ]


def outside(
    urls: Mapping[str, str], hosts: Mapping[str, str], resolver: Resolver = resolve
) -> list[str]:
    """One line per URL that leads anywhere but `hosts` (address → host name)."""
    problems = []
    for name, url in sorted(urls.items()):
        hostname = urlsplit(url).hostname or ""
        addresses = resolver(hostname)
        if not addresses:
            problems.append(f"{name}: {hostname!r} does not resolve")
            continue
        foreign = [address for address in addresses if address not in hosts]
        if foreign:
            problems.append(f"{name}: {hostname} is {', '.join(foreign)}, not a host of this run")
    return problems


def require_inside(
    sources: Iterable[Mapping[str, str]], hosts: Mapping[str, str], resolver: Resolver = resolve
) -> dict[str, str]:
    """Every URL found in `sources`; raises ClusterError listing each that leads elsewhere."""
    urls: dict[str, str] = {}
    problems: list[str] = []
    for source in sources:
        urls.update(urls_in(source))
        problems += endpointless_buckets(source)
    if not urls:
        raise ClusterError("no URL to check: the run's configuration is empty")
    problems += outside(urls, hosts, resolver)
    if problems:
        raise ClusterError("traffic would leave the run's hosts: " + "; ".join(problems))
    return urls
