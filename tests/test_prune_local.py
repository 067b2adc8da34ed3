"""prune's local half: images and wheelhouse entries no current cell or lock names (no engine: a stand-in
that answers the one low-level list call prune makes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from generator.fleet import Fleet
from generator.release.prune import local_images, wheelhouse_orphans
from generator.spec.profiles import load_profile


class Api:
    def __init__(self, tags: list[list[str]]) -> None:
        self.tags = tags

    def images(self) -> list[dict[str, Any]]:
        return [{"RepoTags": t} for t in self.tags]


class Client:
    def __init__(self, tags: list[list[str]]) -> None:
        self.api = Api(tags)


def test_only_tags_of_the_cells_repositories_that_no_current_cell_has_are_listed() -> None:
    rendered = Fleet.for_profile(load_profile("sandbox")).render()[:1]
    current = rendered[0]
    repo = current.ref.rpartition(":")[0]
    slug = current.cell.slug
    client = Client(
        [
            [current.ref, f"{repo}:{slug}-000000000000"],  # the current build, and an older one's tag
            [f"{repo}:{slug}", f"{repo}:{slug}-20261201"],  # aliases stay
            ["debian:12", f"127.0.0.1:5000/someone-else:{slug}-000000000000"],  # not the fleet's
            [],  # dangling
        ]
    )
    assert local_images(client, rendered) == [f"{repo}:{slug}-000000000000"]


def test_wheelhouse_entries_no_lock_names_are_listed(tmp_path: Path) -> None:
    for hexdigest in ("a" * 64, "b" * 64):
        (tmp_path / "sha256" / hexdigest[:2] / hexdigest).mkdir(parents=True)
    assert wheelhouse_orphans(tmp_path, {"a" * 64}) == [tmp_path / "sha256" / "bb" / ("b" * 64)]
    assert wheelhouse_orphans(tmp_path / "none", set()) == []
