"""The nightly's plan job: which cells to build, as a GitHub Actions matrix, decided by tested Python.

`plan()` takes the rendered fleet and an `exists` predicate ("is this cell's immutable tag in the
registry?") and returns

    {"include": [{index, slug, cloud, variant, base, torch, stack, digest, tag, ref, dir}, ...],
     "empty": false,          # true when there is nothing to build
     "forced": false,
     "skipped": [{index, slug, ref, reason}],     # already in the registry: nothing to do
     "refused": [{index, slug, status, reason}]}  # FAIL their checks: can never be built

**Empty matrices.** GitHub rejects a job whose `strategy.matrix` has an empty `include` ("Matrix must
define at least one vector"), and a matrix with keys other than its vectors is not a matrix. So the
workflow is given two outputs (`github_outputs()` writes them, for `$GITHUB_OUTPUT`): `matrix`, exactly
`{"include": [...]}`, and `empty`, and the build job is skipped when there is nothing to build:

    build:
      needs: plan
      if: needs.plan.outputs.empty == 'false'
      strategy:
        matrix: ${{ fromJSON(needs.plan.outputs.matrix) }}

**The registry down.** The plan never guesses (`generator.release.registry`'s rule, which `build` follows too):
a registry that cannot be reached, refuses credentials or answers anything but 200/404 is a
RegistryError (exit status 2) naming the registry and the image, after a few tries when the trouble
may pass (5xx, 429, timeouts), so the nightly neither rebuilds the whole fleet nor skips it all on a
blip. `--force` plans every cell without asking the registry.

Two predicates answer "exists": `manifest_exists_http` (a plain HTTP HEAD on the registry's v2 API: no
Docker engine, what a plain CI runner has) and `registry_exists` (the engine's distribution inspect, as
`build` does). Both take their credentials from `generator.release.credentials`, like `push`.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath
from typing import Any

from generator.errors import FleetError
from generator.release.credentials import ENV_PASSWORD, ENV_USERNAME, Credentials, CredentialSource
from generator.release.registry import LOOKUP, TRANSIENT_STATUS, RegistryError, asking, exists_via_engine
from generator.render.renderer import RenderedCell
from generator.resolve.checks import FAIL
from generator.retry import Policy

Exists = Callable[[RenderedCell], bool]

# GitHub runs at most 256 jobs from one matrix; past that the workflow fails at start, far from the cause.
MAX_JOBS = 256
# Everything an image's tag may point at: a multi-platform index as well as a single manifest.
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
DOCKER_HUB = "registry-1.docker.io"
CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
ADVICE = (
    "Nothing planned: the plan neither rebuilds every cell nor skips them all on a registry problem "
    "(--force builds every cell without asking)"
)

__all__ = [
    "MANIFEST_TYPES",
    "MAX_JOBS",
    "RegistryError",
    "github_outputs",
    "http_exists",
    "job_axes",
    "manifest_exists_http",
    "plan",
    "registry_exists",
    "split_ref",
]

# -- the plan ------------------------------------------------------------------------------------------------


def plan(
    rendered: list[RenderedCell],
    exists: Exists,
    *,
    force: bool = False,
    only: set[str] | None = None,
    images_dir: str = "images",
) -> dict[str, Any]:
    """The cells to build, in matrix order, as a GitHub Actions matrix plus what was left out and why.

    `only`: slugs to consider (None: all). `force`: build every cell that can be built, without asking
    `exists`. FAILing cells are never built, forced or not. `exists` may raise RegistryError; it then
    propagates: no plan is better than a wrong one.
    """
    include: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    for r in rendered:
        cell = r.cell
        if only is not None and cell.slug not in only:
            continue
        if r.status == FAIL:
            refused.append({"index": cell.index, "slug": cell.slug, "status": FAIL, "reason": _failures(r)})
        elif not force and exists(r):
            skipped.append({"index": cell.index, "slug": cell.slug, "ref": r.ref, "reason": "in the registry"})
        else:
            include.append(_entry(r, images_dir))
    if len(include) > MAX_JOBS:
        raise FleetError(
            f"{len(include)} cells to build: a GitHub Actions matrix runs at most {MAX_JOBS} jobs; "
            "plan a subset per job (CELL patterns)"
        )
    return {"include": include, "empty": not include, "forced": force, "skipped": skipped, "refused": refused}


def job_axes(r: RenderedCell) -> dict[str, Any]:
    """What a CI job is named and keyed by: the cell's axes, its content digest and tag (also `matrix --json`)."""
    cell = r.cell
    return {
        "index": cell.index,
        "slug": cell.slug,
        "cloud": cell.cloud,
        "variant": cell.variant,
        "base": cell.base,
        "torch": cell.torch,
        "stack": cell.stack,
        "digest": r.digest,
        "tag": r.tag,
    }


def _entry(r: RenderedCell, images_dir: str) -> dict[str, Any]:
    return {**job_axes(r), "ref": r.ref, "dir": str(PurePosixPath(images_dir) / r.cell.slug)}


def _failures(r: RenderedCell) -> str:
    return "; ".join(f"{c.title}: {c.detail}" for c in r.checks if c.status == FAIL)


def github_outputs(result: dict[str, Any]) -> str:
    """`$GITHUB_OUTPUT` lines: `matrix` (only `{"include": [...]}`, one line), `empty`, `count`."""
    matrix = json.dumps({"include": result["include"]}, separators=(",", ":"), ensure_ascii=False)
    empty = "true" if result["empty"] else "false"
    return f"matrix={matrix}\nempty={empty}\ncount={len(result['include'])}\n"


# -- "exists" through the Docker engine ----------------------------------------------------------------------


def registry_exists(client: Any, source: CredentialSource | None = None, *, policy: Policy = LOOKUP) -> Exists:
    """`exists` via the engine (`generator.release.registry.exists_via_engine`): 404 is False, trouble is RegistryError.

    The engine answers 404 for a tag the registry does not have and 500 when the registry cannot be
    reached or refuses; only the first means "build it".
    """
    source = CredentialSource() if source is None else source

    def exists(rendered: RenderedCell) -> bool:
        try:
            return exists_via_engine(client, rendered.ref, source, policy=policy)
        except RegistryError as exc:
            raise RegistryError(exc.ref, exc.why, ADVICE) from None

    return exists


# -- "exists" over plain HTTP ----------------------------------------------------------------------------------


def http_exists(*, timeout: float = 10.0, env: Mapping[str, str] | None = None, policy: Policy = LOOKUP) -> Exists:
    """`exists` via `manifest_exists_http`: for a CI runner without a Docker engine. One credential lookup
    per registry for the whole plan (a helper such as ECR's asks the cloud each time it runs)."""
    source = CredentialSource(env)
    return lambda rendered: manifest_exists_http(rendered.ref, timeout=timeout, source=source, policy=policy)


def manifest_exists_http(
    ref: str,
    *,
    timeout: float = 10.0,
    env: Mapping[str, str] | None = None,
    source: CredentialSource | None = None,
    policy: Policy = LOOKUP,
    sleep: Callable[[float], object] = time.sleep,
) -> bool:
    """Whether the registry has `ref` (`host/repo:tag` or `host/repo@sha256:...`): HEAD on its manifest.

    200: True. 404: False. 401: asked again with the registry's credentials (`generator.release.credentials`: the
    environment's pair, the Docker config, its credential helpers): HTTP Basic, or the Bearer token flow
    (a token from the challenge's realm, for a password or an identity token; a registry token as it is).
    408, 429, 5xx, a refused connection or a timeout: tried again (`policy`), then RegistryError, like
    anything else. Loopback registries (127.0.0.1, localhost, ::1) are spoken to over HTTP, without any
    proxy; all others over HTTPS.
    """
    source = CredentialSource(env) if source is None else source
    host, repo, reference = split_ref(ref)
    url = f"{_scheme(host)}://{host}/v2/{repo}/manifests/{reference}"
    opener = _opener(host)

    def once() -> bool:
        status, challenge = _head(opener, url, None, ref, timeout)
        if status == 401:
            creds = source.for_registry(host)
            if creds.anonymous:
                raise _unknown(
                    ref, f"{host} wants credentials: set {ENV_USERNAME} and {ENV_PASSWORD}, or `docker login` to it"
                )
            auth = _authorization(opener, challenge, creds, repo, ref, timeout)
            status, _ = _head(opener, url, auth, ref, timeout)
            if status == 401:
                raise _unknown(ref, f"{host} refused the credentials from the {creds.source}")
        if 200 <= status < 300:
            return True
        if status == 404:
            return False
        raise _unknown(ref, f"{host} answered HTTP {status} to HEAD {url}", transient=status in TRANSIENT_STATUS)

    return asking(ref, once, policy=policy, sleep=sleep)


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


def _scheme(host: str) -> str:
    return "http" if _loopback(host) else "https"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as is: following it would carry the Authorization header to another host."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _opener(host: str) -> urllib.request.OpenerDirector:
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if _loopback(host):  # a corporate HTTP(S)_PROXY must never see, or answer for, a loopback address
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


def _head(
    opener: urllib.request.OpenerDirector, url: str, auth: str | None, ref: str, timeout: float
) -> tuple[int, str]:
    """(HTTP status, WWW-Authenticate) of HEAD `url`; a transient RegistryError when no answer comes."""
    headers = {"Accept": ", ".join(MANIFEST_TYPES)}
    if auth:
        headers["Authorization"] = auth
    request = urllib.request.Request(url, headers=headers, method="HEAD")  # noqa: S310 - http(s) by _scheme
    try:
        with opener.open(request, timeout=timeout) as response:
            return int(response.status), ""
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("WWW-Authenticate", "") if exc.headers else ""
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:  # no answer, or no HTTP one
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        host = urllib.parse.urlsplit(url).netloc
        raise _unknown(ref, f"{host} cannot be reached: {_one_line(reason)}", transient=True) from None


def _basic(creds: Credentials) -> str:
    return "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode("ascii")


def _authorization(
    opener: urllib.request.OpenerDirector,
    challenge: str,
    creds: Credentials,
    repo: str,
    ref: str,
    timeout: float,
) -> str:
    """The Authorization header that answers `challenge` (Basic, or Bearer via the realm's token service)."""
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
        with _opener(parts.netloc).open(request, timeout=timeout) as response:
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


def _unknown(ref: str, why: str, *, transient: bool = False) -> RegistryError:
    return RegistryError(ref, why, ADVICE, transient=transient)


def _one_line(value: object) -> str:
    text = str(value).strip() or type(value).__name__
    return " ".join(text.splitlines())
