"""The size gate against the real registry: a cell's blessed image (the release alias), then a candidate
with a planted 100 MB file (random bytes: compression cannot hide them) trips the gate; accepting the
cell in the matrix up to that size lets it through. Both images live in repositories of the test's own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from generator.model import SizeAcceptance, SizePolicy
from generator.release.credentials import CredentialSource
from generator.release.distribution import Registry
from generator.release.oci import split_ref
from generator.release.size import check_rendered, manifest_size
from tests.integration.sandboxcell import Built, built_cell

REPOSITORY = f"sbom-test/size-{uuid.uuid4().hex[:8]}"
PLANTED = 100_000_000


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    with built_cell(tmp_path_factory, "size-fleet", REPOSITORY, "runtime") as cell:
        yield cell


def _push(built: Built, image_id: str, ref: str) -> None:
    name, _, tag = ref.rpartition(":")
    built.client.images.get(image_id).tag(name, tag)
    for line in built.client.images.push(name, tag=tag, stream=True, decode=True):
        assert "error" not in line, line


def _planted(built: Built, context: Path) -> str:
    """FROM the cell's image, one layer holding 100 MB of random bytes; its image id."""
    (context / "Dockerfile").write_text(
        f"FROM {built.rendered.ref}\nRUN head -c {PLANTED} /dev/urandom > /planted.bin\n"
    )
    image, _ = built.client.images.build(path=str(context), rm=True, forcerm=True)
    return str(image.id)


def test_a_planted_100_mb_trips_the_gate_and_an_acceptance_lets_it_through(built: Built, tmp_path: Path) -> None:
    registry = Registry("127.0.0.1:5000", CredentialSource({}))
    slug = built.rendered.cell.slug
    _, release, _ = split_ref(built.rendered.release_ref)
    _, staging, tag = split_ref(built.rendered.ref)
    good = built.client.images.get(built.rendered.ref).id
    planted = _planted(built, tmp_path)
    try:
        _push(built, good, f"{built.rendered.cell.image}:{slug}")  # blessed: the release alias
        _push(built, planted, built.rendered.ref)  # the candidate in staging, grown
        blessed = manifest_size(registry, release, slug)
        assert blessed is not None and blessed.bytes > 0

        result = check_rendered(registry, built.rendered, SizePolicy())
        assert not result.ok and "more than the 10 % allowed" in result.why
        assert result.candidate is not None and result.candidate["bytes"] - blessed.bytes > PLANTED * 0.99
        assert result.blessed == {"digest": blessed.digest, "bytes": blessed.bytes}
        assert result.change_percent is not None and result.change_percent > 10

        ceiling = result.candidate["bytes"] + 1_000_000
        accept = SizeAcceptance(slug, ceiling, "planted on purpose by the test", built.rendered.cell.origin)
        accepted = check_rendered(registry, built.rendered, replace(SizePolicy(), accept=(accept,)))
        assert accepted.ok and "planted on purpose" in accepted.why
    finally:
        for repo, reference in ((release, slug), (staging, tag)):
            digest = registry.manifest_digest(repo, reference)
            if digest is not None:
                registry.delete_manifest(repo, digest)
        built.client.images.remove(f"{built.rendered.cell.image}:{slug}")
