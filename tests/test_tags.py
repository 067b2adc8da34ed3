"""tags_for: the immutable content-digest tag plus the moving aliases, checked against the OCI tag grammar."""

from __future__ import annotations

import datetime
import hashlib
import random
import re

import pytest

from generator.fleet import Fleet
from generator.render import image_tag
from generator.tags import TAG, Tags, check_tag, tags_for
from tests.conftest import DEFAULT_MATRIX

DIGEST = "sha256:" + hashlib.sha256(b"air-fleet").hexdigest()
DAY = datetime.date(2026, 3, 7)
OCI_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")  # the spec's grammar, written out again on purpose
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
    tags = tags_for("aws-runtime-torch2.6-flash-attn2.7.4.post1", DIGEST, DAY)
    assert tags == Tags(
        immutable=f"aws-runtime-torch2.6-flash-attn2.7.4.post1-{DIGEST[7:19]}",
        aliases=("aws-runtime-torch2.6-flash-attn2.7.4.post1", "aws-runtime-torch2.6-flash-attn2.7.4.post1-20260307"),
    )
    assert tags.all == (tags.immutable, *tags.aliases)


def test_the_immutable_tag_is_the_renderers() -> None:
    """Reused, not re-implemented: the tag the builder builds is the tag that is pushed, for every real cell."""
    fleet = Fleet.load(DEFAULT_MATRIX)
    for rendered in fleet.render():
        tags = tags_for(rendered.cell.slug, rendered.digest, DAY)
        assert tags.immutable == rendered.tag == image_tag(rendered.cell.slug, rendered.digest)
        assert rendered.ref == f"{rendered.cell.image}:{tags.immutable}"


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
            assert check_tag(candidate) == candidate and TAG.fullmatch(candidate)
        else:
            with pytest.raises(ValueError):
                check_tag(candidate)
    assert seen[True] > 50 and seen[False] > 50  # both sides of the grammar were exercised
