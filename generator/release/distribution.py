"""A registry's distribution API, read and write, without a Docker engine: what promote, SBOM attachment
and prune do to a registry.

One `Registry` per host. Each call is one HTTP request (a 401 is answered once with the registry's own
auth flow: `generator.release.oci`'s Basic or Bearer, credentials from `generator.release.credentials`),
and its answer is checked against the statuses the call expects; any other status is a RegistryError
naming the operation, transient for 408, 429 and 5xx, as is no answer at all. Retrying is the caller's
choice (`generator.release.registry.asking`), because only the caller knows whether its step may be
repeated (every write here may: a blob mount, a manifest PUT of the same bytes, a DELETE that finds
nothing are idempotent).

What a promotion needs, and why it moves no layer: `mount_blob` asks the registry to link a blob it
already holds in another repository (`POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<repo>`, 201
Created); a registry that declines answers 202 with an upload session, and the blob is then copied
through this process (`get_blob`, `put_blob`), which only happens across registries or where mounting is
off. `put_manifest` then writes the very bytes of the source manifest, so its digest is the same.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

from generator.release import oci
from generator.release.credentials import CredentialSource
from generator.release.registry import TRANSIENT_STATUS, RegistryError

DEFAULT_TIMEOUT_S = 60.0
MAX_BLOB_BYTES = 64 << 20  # blobs read into memory: configs, SBOMs, small artifacts; never a layer
LINK_NEXT = "next"


class Registry:
    """The distribution API of one registry host (`127.0.0.1:5000`, `registry.example.com`)."""

    def __init__(
        self,
        host: str,
        source: CredentialSource,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        advice: str = "",
    ) -> None:
        self.host = host
        self.source = source
        self.timeout = timeout
        self.advice = advice
        self.base = f"{oci.scheme(host)}://{host}"
        self._auth: dict[str, str] = {}  # repository -> Authorization header that worked for it

    # -- manifests -------------------------------------------------------------------------------------

    def manifest(self, repo: str, reference: str) -> oci.Answer | None:
        """The manifest `reference` (tag or digest) of `repo`, or None when the registry has none."""
        reply = self._send("GET", repo, f"manifests/{reference}", accept=oci.MANIFEST_TYPES, ok=(200, 404))
        if reply.status == 404:
            return None
        return oci.Answer(reply.status, reply.header("Docker-Content-Digest"), reply.media_type, reply.body)

    def manifest_digest(self, repo: str, reference: str) -> str | None:
        """The digest `reference` resolves to in `repo` (HEAD), or None when it is not there."""
        reply = self._send("HEAD", repo, f"manifests/{reference}", accept=oci.MANIFEST_TYPES, ok=(200, 404))
        return reply.header("Docker-Content-Digest") if reply.status == 200 else None

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        """Write `body` as manifest `reference` (a tag, or its digest); the registry's digest of it."""
        reply = self._send(
            "PUT", repo, f"manifests/{reference}", body=body, content_type=media_type, ok=(201,), what="PUT manifest"
        )
        return reply.header("Docker-Content-Digest") or "sha256:" + hashlib.sha256(body).hexdigest()

    def delete_manifest(self, repo: str, digest: str) -> bool:
        """Delete the manifest `digest` (and so every tag on it); False when it was not there."""
        reply = self._send("DELETE", repo, f"manifests/{digest}", ok=(202, 404), what="DELETE manifest")
        return reply.status == 202

    def tags(self, repo: str) -> list[str]:
        """Every tag of `repo` (following the registry's pagination); [] for a repository it does not know."""
        found: list[str] = []
        path: str | None = "tags/list?n=1000"
        while path is not None:
            reply = self._send("GET", repo, path, ok=(200, 404), what="list tags")
            if reply.status == 404:
                return found
            found.extend(json.loads(reply.body or b"{}").get("tags") or [])
            path = _next_page(reply.header("Link"), repo)
        return found

    def referrers(self, repo: str, digest: str) -> list[dict[str, Any]] | None:
        """The manifests whose `subject` is `digest` (OCI 1.1 referrers API), or None where the registry
        does not offer that API (then use the `sha256-<hex>` tag convention)."""
        reply = self._send(
            "GET", repo, f"referrers/{digest}", accept=("application/vnd.oci.image.index.v1+json",), ok=(200, 404)
        )
        if reply.status != 200 or reply.media_type != "application/vnd.oci.image.index.v1+json":
            return None
        return list(json.loads(reply.body).get("manifests") or [])

    # -- blobs -----------------------------------------------------------------------------------------

    def has_blob(self, repo: str, digest: str) -> bool:
        return self._send("HEAD", repo, f"blobs/{digest}", ok=(200, 404)).status == 200

    def get_blob(self, repo: str, digest: str) -> bytes:
        """A small blob's bytes (config, SBOM), checked against its digest."""
        reply = self._send("GET", repo, f"blobs/{digest}", ok=(200,), what="GET blob", limit=MAX_BLOB_BYTES)
        if "sha256:" + hashlib.sha256(reply.body).hexdigest() != digest:
            raise self._error(repo, f"the blob {digest} it sent has other bytes", "GET blob")
        return reply.body

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Link `digest` from `from_repo` into `repo` without moving its bytes. False when the registry
        declined (it opened an upload session instead, which is left to expire)."""
        query = urllib.parse.urlencode({"mount": digest, "from": from_repo})
        reply = self._send("POST", repo, f"blobs/uploads/?{query}", ok=(201, 202), what="mount blob")
        if reply.status == 202:
            location = reply.header("Location")
            if location:  # cancel the session the registry opened instead, rather than leave it to expire
                self._send("DELETE", repo, self._absolute(location), ok=(204, 404, 405), what="cancel upload")
        return reply.status == 201

    def put_blob(self, repo: str, data: bytes) -> str:
        """Upload `data` in one request (POST for a session, PUT with the digest); its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.has_blob(repo, digest):
            return digest
        reply = self._send("POST", repo, "blobs/uploads/", ok=(202,), what="start upload")
        location = reply.header("Location")
        if not location:
            raise self._error(repo, "it opened an upload without a Location", "start upload")
        url = self._absolute(location)
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"digest": digest})
        self._send("PUT", repo, url, body=data, content_type="application/octet-stream", ok=(201,), what="upload")
        return digest

    def copy_blob(self, repo: str, digest: str, from_repo: str) -> str:
        """Make `digest` present in `repo`: already there, mounted, or (small blobs only) copied."""
        if self.has_blob(repo, digest):
            return "present"
        if self.mount_blob(repo, digest, from_repo):
            return "mounted"
        self.put_blob(repo, self.get_blob(from_repo, digest))
        return "copied"

    # -- HTTP ------------------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        repo: str,
        path: str,
        *,
        ok: tuple[int, ...],
        body: bytes | None = None,
        content_type: str | None = None,
        accept: tuple[str, ...] = (),
        what: str | None = None,
        limit: int = oci.MAX_MANIFEST_BYTES,
    ) -> oci.Reply:
        # `path`: under /v2/<repo>/, or a whole URL the registry gave (an upload session's Location)
        url = path if path.startswith(("http://", "https://")) else f"{self.base}/v2/{repo}/{path}"
        what = what or f"{method} {url.split('/v2/', 1)[-1].split('?')[0]}"
        headers = {"Accept": ", ".join(accept)} if accept else {}
        if content_type:
            headers["Content-Type"] = content_type
        call = oci.Call(method, url, headers, body, limit)
        ref = f"{self.host}/{repo}"
        reply, auth = oci.authorized(
            call, self._auth.get(repo), self.host, repo, ref, self.source, self.timeout, self.advice, what
        )
        if auth is not None:
            self._auth[repo] = auth
        if reply.status not in ok:
            raise self._error(
                repo, f"{self.host} answered HTTP {reply.status}{_errors(reply.body)}", what, reply.status
            )
        return reply

    def _absolute(self, location: str) -> str:
        return urllib.parse.urljoin(self.base + "/", location)

    def _error(self, repo: str, why: str, what: str, status: int | None = None) -> RegistryError:
        transient = status is not None and status in TRANSIENT_STATUS
        return RegistryError(f"{self.host}/{repo}", why, self.advice, transient=transient, doing=what)


def _next_page(link: str | None, repo: str) -> str | None:
    """The path after /v2/<repo>/ of a `Link: </v2/...>; rel="next"` header, else None."""
    if not link or f'rel="{LINK_NEXT}"' not in link:
        return None
    target = link.split(";", 1)[0].strip().strip("<>")
    path = urllib.parse.urlsplit(target)
    prefix = f"/v2/{repo}/"
    return (
        (path.path.removeprefix(prefix) + (f"?{path.query}" if path.query else ""))
        if path.path.startswith(prefix)
        else None
    )


def _errors(body: bytes) -> str:
    """`: CODE message` from a registry's JSON error body, when it sent one."""
    try:
        errors = json.loads(body).get("errors") or []
    except (ValueError, AttributeError):
        return ""
    text = "; ".join(f"{e.get('code', '')} {e.get('message', '')}".strip() for e in errors if isinstance(e, dict))
    return f": {text}" if text else ""


def walk_blobs(manifest_body: bytes) -> Iterator[str]:
    """The digests of every blob an image manifest names: its config, then its layers (and an
    artifact's, and a subject-carrying manifest's); none for an index (its children are manifests)."""
    document = json.loads(manifest_body)
    config = _config_of(document)
    if config:
        yield config
    for layer in document.get("layers") or []:
        if isinstance(layer, dict) and layer.get("digest"):
            yield str(layer["digest"])


def config_digest(manifest_body: bytes) -> str | None:
    """The config blob an image manifest names (None for an index, which names manifests instead)."""
    return _config_of(json.loads(manifest_body))


def _config_of(document: dict[str, Any]) -> str | None:
    config = document.get("config")
    return str(config["digest"]) if isinstance(config, dict) and config.get("digest") else None
