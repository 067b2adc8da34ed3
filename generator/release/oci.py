"""The OCI distribution API over plain HTTP: one manifest request with the registry's own auth flow.

No Docker engine needed (a CI runner without one; the lock resolving a base image's digest). Credentials
come from `generator.release.credentials` (the environment's pair, the Docker config, its helpers): HTTP
Basic, or the Bearer token flow (a token from the challenge's realm, for a password or an identity token;
a registry token as it is). No answer at all is a RegistryError marked transient, for the caller's retry
policy. Loopback registries (127.0.0.1, localhost, ::1) are spoken to over HTTP without any proxy; all
others over HTTPS. Redirects are not followed: they would carry the Authorization header to another host.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from generator.errors import FleetError
from generator.release.credentials import ENV_PASSWORD, ENV_USERNAME, Credentials, CredentialSource
from generator.release.registry import TRANSIENT_STATUS, RegistryError

# Everything an image's tag may point at: a multi-platform index as well as a single manifest.
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = frozenset({MANIFEST_TYPES[0], MANIFEST_TYPES[2]})
DOCKER_HUB = "registry-1.docker.io"
CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
MAX_MANIFEST_BYTES = 4 << 20  # a manifest or an index is a few KiB


@dataclass(frozen=True)
class Answer:
    """What the registry said about one manifest: HTTP status, and for 2xx its digest, type and body."""

    status: int
    digest: str | None = None  # Docker-Content-Digest
    media_type: str | None = None
    body: bytes = b""


def manifest(ref: str, *, method: str, source: CredentialSource, timeout: float, advice: str) -> Answer:
    """HEAD or GET the manifest `ref` names (`host/repo:tag` or `host/repo@sha256:...`), answering a 401
    with the registry's credentials. Any status comes back to the caller; `advice` ends its errors."""
    host, repo, reference = split_ref(ref)
    call = Call(
        method, f"{scheme(host)}://{host}/v2/{repo}/manifests/{reference}", {"Accept": ", ".join(MANIFEST_TYPES)}
    )
    reply, _ = authorized(call, None, host, repo, ref, source, timeout, advice)
    if not 200 <= reply.status < 300:
        return Answer(reply.status)
    return Answer(reply.status, reply.header("Docker-Content-Digest"), reply.media_type, reply.body)


def head(ref: str, *, source: CredentialSource, timeout: float, advice: str) -> Answer | None:
    """The HEAD answer for the manifest `ref` names; None when the registry has no such manifest (404).
    Any other status is a RegistryError (transient for 408, 429, 5xx), for the caller's retry policy."""
    answer = manifest(ref, method="HEAD", source=source, timeout=timeout, advice=advice)
    if answer.status == 404:
        return None
    if not 200 <= answer.status < 300:
        raise unexpected(ref, answer, "HEAD", advice)
    return answer


def authorized(
    call: Call,
    auth: str | None,
    host: str,
    repo: str,
    ref: str,
    source: CredentialSource,
    timeout: float,
    advice: str,
    doing: str | None = None,
) -> tuple[Reply, str | None]:
    """`call` sent with `auth` (None: anonymously first); a 401 is answered once with the registry's
    credentials for `host`. (the reply, the Authorization that got it, to reuse for the same repository)."""
    client = opener(host)
    reply, challenge = send(client, call, auth, ref, timeout, advice, doing)
    if reply.status != 401:
        return reply, auth
    creds = source.for_registry(host)
    if creds.anonymous:
        why = f"{host} wants credentials: set {ENV_USERNAME} and {ENV_PASSWORD}, or `docker login` to it"
        raise RegistryError(ref, why, advice, doing=doing)
    auth = authorization(client, challenge, creds, repo, ref, timeout, advice)
    reply, _ = send(client, call, auth, ref, timeout, advice, doing)
    if reply.status == 401:
        raise RegistryError(ref, f"{host} refused the credentials from the {creds.source}", advice, doing=doing)
    return reply, auth


def unexpected(ref: str, answer: Answer, method: str, advice: str) -> RegistryError:
    """A RegistryError for a status the caller does not expect (transient for 408, 429, 5xx)."""
    host = split_ref(ref)[0]
    why = f"{host} answered HTTP {answer.status} to {method} of the manifest"
    return RegistryError(ref, why, advice, transient=answer.status in TRANSIENT_STATUS)


def split_ref(ref: str) -> tuple[str, str, str]:
    """`host[:port]/repo[:tag|@digest]` -> (host, repository, tag or digest), with Docker's defaults."""
    name, at, digest = ref.partition("@")
    reference = digest if at else "latest"
    if not at:
        head, colon, tag = name.rpartition(":")
        if colon and "/" not in tag:  # a colon after the last slash is a tag; before it, a port
            name, reference = head, tag
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        host, repo = first, rest
    else:  # Docker Hub, where single names live under library/
        host, repo = DOCKER_HUB, name if slash else f"library/{name}"
    if host == "docker.io":
        host = DOCKER_HUB
    if not repo or not reference:
        raise FleetError(f"not an image reference: {ref!r}")
    return host, repo, reference


def _loopback(host: str) -> bool:
    hostname = urllib.parse.urlsplit(f"//{host}").hostname or ""
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def scheme(host: str) -> str:
    return "http" if _loopback(host) else "https"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as is: following it would carry the Authorization header to another host."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def opener(host: str) -> urllib.request.OpenerDirector:
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if _loopback(host):  # a corporate HTTP(S)_PROXY must never see, or answer for, a loopback address
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


@dataclass(frozen=True)
class Call:
    """One HTTP request to a registry: what to send, and how much of the answer's body to read."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    limit: int = MAX_MANIFEST_BYTES


@dataclass(frozen=True)
class Reply:
    """A registry's answer: status, headers, and (for a GET) the body."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    @property
    def media_type(self) -> str | None:
        """Content-Type without its parameters."""
        return (self.header("Content-Type") or "").split(";")[0].strip() or None


def send(
    client: urllib.request.OpenerDirector,
    call: Call,
    auth: str | None,
    ref: str,
    timeout: float,
    advice: str,
    doing: str | None = None,
) -> tuple[Reply, str]:
    """(the reply, WWW-Authenticate) of `call`; a transient RegistryError when no answer comes."""
    headers = dict(call.headers)
    if auth:
        headers["Authorization"] = auth
    request = urllib.request.Request(call.url, data=call.body, headers=headers, method=call.method)  # noqa: S310 - http(s) by scheme()
    try:
        with client.open(request, timeout=timeout) as response:
            body = response.read(call.limit + 1) if call.method == "GET" else b""
            if len(body) > call.limit:
                raise RegistryError(ref, f"its answer is larger than {call.limit} bytes", advice, doing=doing)
            return Reply(int(response.status), dict(response.headers.items()), body), ""
    except urllib.error.HTTPError as exc:
        found = dict(exc.headers.items()) if exc.headers else {}
        body = exc.read(64 << 10) if call.method != "HEAD" else b""
        return Reply(exc.code, found, body), found.get("WWW-Authenticate", "") or found.get("Www-Authenticate", "")
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:  # no answer, or no HTTP one
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        host = urllib.parse.urlsplit(call.url).netloc
        why = f"{host} cannot be reached: {_one_line(reason)}"
        raise RegistryError(ref, why, advice, transient=True, doing=doing) from None


def _basic(creds: Credentials) -> str:
    return "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode("ascii")


def authorization(
    client: urllib.request.OpenerDirector,
    challenge: str,
    creds: Credentials,
    repo: str,
    ref: str,
    timeout: float,
    advice: str,
) -> str:
    """The Authorization header that answers `challenge` (Basic, or Bearer via the realm's token service)."""

    def _unknown(ref: str, why: str, *, transient: bool = False) -> RegistryError:
        return RegistryError(ref, why, advice, transient=transient)

    scheme = challenge.split(" ", 1)[0].lower()
    if creds.registry_token:  # a token for the registry itself: nothing to exchange
        return f"Bearer {creds.registry_token}"
    if scheme == "basic":
        if not creds.password:
            raise _unknown(ref, f"the registry asks for a password, and the {creds.source} holds a token")
        return _basic(creds)
    if scheme != "bearer":
        raise _unknown(ref, f"the registry asks for {scheme or 'an unnamed'} authentication; Basic and Bearer work")
    params = dict(CHALLENGE_PARAM.findall(challenge))
    realm = params.get("realm", "")
    parts = urllib.parse.urlsplit(realm)
    if parts.scheme not in ("http", "https"):
        raise _unknown(ref, f"the registry's token realm is not a URL: {realm!r}")
    if parts.scheme == "http" and not _loopback(parts.netloc):  # never credentials in clear over a network
        raise _unknown(ref, f"the registry's token service {parts.netloc} is plain HTTP; refusing to send credentials")
    query = {"service": params.get("service", ""), "scope": params.get("scope") or f"repository:{repo}:pull"}
    query = {k: v for k, v in query.items() if v}
    if creds.identity_token:  # OAuth2: the refresh token is exchanged by POST (the distribution token spec)
        form = {**query, "grant_type": "refresh_token", "refresh_token": creds.identity_token, "client_id": "air-fleet"}
        data: bytes | None = urllib.parse.urlencode(form).encode()
        request = urllib.request.Request(realm, data=data, method="POST")  # noqa: S310 - checked above
    else:
        url = realm + ("&" if parts.query else "?") + urllib.parse.urlencode(query)
        request = urllib.request.Request(url, headers={"Authorization": _basic(creds)})  # noqa: S310 - checked above
    try:
        with opener(parts.netloc).open(request, timeout=timeout) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        raise _unknown(
            ref, f"the token service {parts.netloc} answered HTTP {exc.code}", transient=exc.code in TRANSIENT_STATUS
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        transient = not isinstance(exc, ValueError)  # no answer may pass; an answer that is not JSON will not
        raise _unknown(
            ref, f"the token service {parts.netloc} failed: {type(exc).__name__}", transient=transient
        ) from None
    token = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise _unknown(ref, f"the token service {parts.netloc} gave no token")
    return f"Bearer {token}"


def _one_line(value: object) -> str:
    text = str(value).strip() or type(value).__name__
    return " ".join(text.splitlines())
