"""tags_for and check_tag against their specification, not against their own code.

The rules (generator/release/tags.py's docstring, the README's "Tags"): an image is pushed as `<slug>-<first 12 hex of
the sha256 content digest>` (immutable), `<slug>` and `<slug>-<yyyymmdd>` (UTC date); every tag must be one
the OCI distribution spec allows, and a slug too long for that is an error, never truncated. They are
checked with literal examples, and as properties over the cells the generator really makes (the default
matrix, and the 1,020-cell stress matrix of benchmarks/generate.py) and over random slugs.
"""

from __future__ import annotations

import datetime
import hashlib
import random
import re
from pathlib import Path

import pytest

from benchmarks.generate import pip_packages_for, stress_matrix, write_matrix
from generator.fleet import Fleet
from generator.release.tags import Tags, check_tag, tags_for
from generator.render.renderer import image_tag
from tests.conftest import DEFAULT_MATRIX

DIGEST = "sha256:" + hashlib.sha256(b"air-fleet").hexdigest()
DAY = datetime.date(2026, 3, 7)
# The OCI distribution spec (opencontainers/distribution-spec, spec.md, "Pulling manifests"): "<reference> as
# a tag MUST be at most 128 characters in length and MUST match the following regular expression:
# [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}". Copied from the spec, not from generator/release/tags.py; the whole tag
# must match, so it is used with fullmatch.
OCI_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
SLUG_HEAD, SLUG_TAIL = "abcdefghijklmnopqrstuvwxyz0123456789", "abcdefghijklmnopqrstuvwxyz0123456789._-"
MAX_SLUG = 128 - len("-") - 12  # the immutable tag is the longest: <slug>-<12 hex>


def seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - reproducible test data, not cryptography


def random_slugs(n: int, seed: int) -> list[str]:
    """Slugs as the matrix makes them ([a-z0-9][a-z0-9._-]*), every length up to the longest allowed."""
    rng = seeded(seed)
    slugs = [rng.choice(SLUG_HEAD) + "".join(rng.choices(SLUG_TAIL, k=rng.randint(0, MAX_SLUG - 1))) for _ in range(n)]
    return [*slugs, "a", "0", "a" * MAX_SLUG, "x-" * (MAX_SLUG // 2)]


def random_digest(rng: random.Random) -> str:
    return "sha256:" + hashlib.sha256(rng.randbytes(16)).hexdigest()


def test_the_tags_of_a_cell() -> None:
    digest = "sha256:0123456789abcdef" + "f" * 48
    tags = tags_for("aws-runtime-torch2.6-flash-attn2.7.4.post1", digest, DAY)
    assert tags == Tags(
        immutable="aws-runtime-torch2.6-flash-attn2.7.4.post1-0123456789ab",
        aliases=("aws-runtime-torch2.6-flash-attn2.7.4.post1", "aws-runtime-torch2.6-flash-attn2.7.4.post1-20260307"),
    )
    assert tags.all == (tags.immutable, *tags.aliases)  # the immutable tag is pushed first
    # A bare hex digest is the same digest; months and days are two digits.
    assert tags_for("c", "0123456789abcdef" + "f" * 48, datetime.date(2027, 1, 2)).all == (
        "c-0123456789ab",
        "c",
        "c-20270102",
    )


@pytest.mark.parametrize(
    "tag",
    [
        "a",
        "Z",
        "0",
        "_",
        "_x",
        "latest",
        "v1.2.3-rc.1_B",
        "aws-runtime-torch2.6",
        "a" * 128,
        "A-" * 64,
        "a.." + "_" * 10,
    ],
)
def test_tags_the_spec_allows(tag: str) -> None:
    assert check_tag(tag) == tag


@pytest.mark.parametrize(
    "tag",
    ["", ".", "-", ".a", "-a", "a" * 129, "a:b", "a/b", "a b", "a+b", "a@b", "é", "a\n", "\ta", "ａ", "a\u0000"],
)
def test_tags_the_spec_forbids(tag: str) -> None:
    with pytest.raises(ValueError, match="invalid image tag"):
        check_tag(tag)


def test_the_immutable_tag_is_the_renderers() -> None:
    """Reused, not re-implemented: the tag the builder builds is the tag that is pushed, for every real cell."""
    fleet = Fleet.load(DEFAULT_MATRIX)
    for rendered in fleet.render():
        tags = tags_for(rendered.cell.slug, rendered.digest, DAY)
        assert tags.immutable == rendered.tag == image_tag(rendered.cell.slug, rendered.digest)
        assert rendered.release_ref == f"{rendered.cell.image}:{tags.immutable}"
        assert rendered.ref == f"{rendered.cell.staging_image}:{tags.immutable}"  # the candidate, same tag


@pytest.fixture(scope="module")
def generated_slugs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The slugs of every cell the generator makes from the default matrix and from the benchmark's stress
    matrix (1,020 cells: every cloud, variant, base, torch row and extension combination it knows)."""
    stress = tmp_path_factory.mktemp("stress") / "matrix.yaml"
    write_matrix(stress, stress_matrix(pip_packages_for(1000)))
    slugs = [c.slug for matrix in (DEFAULT_MATRIX, stress) for c in Fleet.load(Path(matrix)).cells]
    assert len(slugs) > 1000
    return slugs


def test_property_every_generated_cell_gets_tags_the_spec_allows(generated_slugs: list[str]) -> None:
    rng = seeded(0)
    for slug in generated_slugs:
        digest = random_digest(rng)
        day = datetime.date(2000, 1, 1) + datetime.timedelta(days=rng.randint(0, 40_000))
        tags = tags_for(slug, digest, day)
        assert all(len(t) <= 128 and OCI_TAG.fullmatch(t) for t in tags.all), tags
        assert tags.all == (f"{slug}-{digest[7:19]}", slug, f"{slug}-{day:%Y%m%d}")
    # Distinct cells never share a tag: the slug is the cell's identity, and each tag starts with it.
    day_tags = [tags_for(slug, DIGEST, DAY).aliases for slug in generated_slugs]
    assert len({t for pair in day_tags for t in pair}) == 2 * len(set(generated_slugs))


@pytest.mark.parametrize("seed", range(20))
def test_property_every_valid_slug_gives_valid_distinct_tags(seed: int) -> None:
    rng = seeded(seed)
    for slug in random_slugs(50, seed):
        digest = random_digest(rng)
        day = datetime.date(2000, 1, 1) + datetime.timedelta(days=rng.randint(0, 40_000))
        tags = tags_for(slug, digest, day)
        assert all(OCI_TAG.fullmatch(t) for t in tags.all), tags
        assert len(set(tags.all)) == 3
        assert tags.immutable == f"{slug}-{digest[7:19]}"
        assert tags.aliases == (slug, f"{slug}-{day.year:04d}{day.month:02d}{day.day:02d}")
        assert tags_for(slug, digest, day) == tags  # pure: the same inputs, the same tags
        assert tags_for(slug, digest.removeprefix("sha256:"), day) == tags


@pytest.mark.parametrize("seed", range(5))
def test_property_a_different_digest_moves_only_the_immutable_tag(seed: int) -> None:
    rng = seeded(seed)
    for slug in random_slugs(20, seed):
        one, two = random_digest(rng), random_digest(rng)
        a, b = tags_for(slug, one, DAY), tags_for(slug, two, DAY)
        assert a.aliases == b.aliases and (a.immutable != b.immutable) == (one[7:19] != two[7:19])


def test_a_different_day_moves_only_the_dated_alias() -> None:
    a, b = tags_for("c", DIGEST, DAY), tags_for("c", DIGEST, DAY + datetime.timedelta(days=1))
    assert (a.immutable, a.aliases[0]) == (b.immutable, b.aliases[0]) and a.aliases[1] != b.aliases[1]
    assert tags_for("c", DIGEST, datetime.datetime(2026, 3, 7, 23, 59, tzinfo=datetime.UTC)).aliases[1] == "c-20260307"


@pytest.mark.parametrize("seed", range(5))
def test_property_a_slug_too_long_is_an_error_never_truncated(seed: int) -> None:
    rng = seeded(seed)
    for extra in range(1, 40):
        slug = rng.choice(SLUG_HEAD) + "".join(rng.choices(SLUG_TAIL, k=MAX_SLUG - 1 + extra))
        with pytest.raises(ValueError, match="longer than 128"):
            tags_for(slug, DIGEST, DAY)


@pytest.mark.parametrize(
    "slug",
    ["", "-leading-dash", ".leading-dot", "a/b", "a:b", "a b", "a\nb", "a@b", "ä", "tab\t", "trailing\n"],
)
def test_slugs_the_grammar_forbids(slug: str) -> None:
    with pytest.raises(ValueError, match="invalid image tag"):
        tags_for(slug, DIGEST, DAY)


@pytest.mark.parametrize(
    "digest",
    ["", "sha256:", "sha256:" + "0" * 63, "sha256:" + "g" * 64, "md5:" + "0" * 64, DIGEST.upper(), DIGEST + "\n"],
)
def test_digests_that_are_not_sha256(digest: str) -> None:
    with pytest.raises(ValueError, match="not a sha256"):
        tags_for("c", digest, DAY)


def test_the_date_is_a_parameter_not_the_clock() -> None:
    with pytest.raises(ValueError, match="not a date"):
        tags_for("c", DIGEST, "2026-03-07")  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(5))
def test_property_check_tag_is_the_oci_grammar(seed: int) -> None:
    rng = seeded(seed)
    alphabet = "abcXYZ019_" * 8 + ".-/:@ \n+é"
    seen = {True: 0, False: 0}
    for _ in range(500):
        candidate = "".join(rng.choices(alphabet, k=rng.choice([0, 1, 2, 5, 30, 127, 128, 129, 140])))
        valid = OCI_TAG.fullmatch(candidate) is not None
        seen[valid] += 1
        if valid:
            assert check_tag(candidate) == candidate
        else:
            with pytest.raises(ValueError):
                check_tag(candidate)
    assert seen[True] > 50 and seen[False] > 50  # both sides of the grammar were exercised
