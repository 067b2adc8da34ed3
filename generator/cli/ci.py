"""For CI and BuildKit: plan, bake."""

from __future__ import annotations

import argparse

from generator.cli.common import print_json
from generator.engine import connect
from generator.fleet import Fleet
from generator.paths import ROOT
from generator.resolve.expand import select


def _images_dir(fleet: Fleet) -> str:
    """The images directory as CI and bake see it: relative to the repository root when inside it."""
    images = fleet.profile.images.resolve()
    return images.relative_to(ROOT).as_posix() if images.is_relative_to(ROOT) else images.as_posix()


def cmd_plan(fleet: Fleet, args: argparse.Namespace) -> int:
    from generator.ci.plan import github_outputs, http_exists, plan, registry_exists

    exists = http_exists() if args.via == "http" else registry_exists(connect())
    only = {c.slug for c in select(fleet.cells, args.cells)} if args.cells else None
    result = plan(fleet.render(), exists, force=args.force, only=only, images_dir=_images_dir(fleet))
    if args.github_output is not None:
        with args.github_output.open("a", encoding="utf-8") as fh:
            fh.write(github_outputs(result))
    if args.json:
        print_json(result)
    else:
        for cell in result["include"]:
            print(f"build    {cell['slug']}")
        for cell in result["skipped"]:
            print(f"skip     {cell['slug']}: {cell['reason']}")
        for cell in result["refused"]:
            print(f"refused  {cell['slug']}: {cell['reason']}")
        print(
            f"{len(result['include'])} to build, {len(result['skipped'])} in the registry, "
            f"{len(result['refused'])} refused"
        )
    return 0


def cmd_bake(fleet: Fleet, args: argparse.Namespace) -> int:
    from generator.ci.bake import bake_file, dumps, write_bake

    data = bake_file(fleet.render(), fleet.profile.images, cache=args.cache_repo, root=ROOT)
    out = args.out if args.out is not None else ROOT / "docker-bake.json"
    written = write_bake(out, data)
    if args.json:
        print(dumps(data), end="")
    else:
        print(f"{out}: {len(data['target'])} targets, {'written' if written else 'unchanged'}")
    return 0
