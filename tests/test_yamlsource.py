"""The strict YAML loader: values keep their source text, every key path has a line, and anything
malformed or hostile (duplicates, aliases, tags, bombs, deep nesting, huge files) is one MatrixError
naming file:line, raised quickly and without building a large structure first.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from generator.errors import MatrixError
from generator.spec import yamlsource
from generator.spec.userfiles import MAX_BYTES, Refused, read_bounded
from generator.spec.yamlsource import (
    MAX_DEPTH,
    MAX_NODES,
    KeyPath,
    Located,
    format_path,
    load_yaml,
    load_yaml_text,
)
from tests.conftest import MINIMAL, ROOT, WriteMatrix, run_cli

FILE = Path("/srv/catalogue/matrix.yaml")

# The classic "billion laughs": 9 levels of 9 aliases each would expand to 9**9 strings.
BILLION_LAUGHS = (
    'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    + "".join(
        f"{cur}: &{cur} [{', '.join([f'*{prev}'] * 9)}]\n" for prev, cur in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "schema: 1\n"
)


def load(text: str) -> Located:
    return load_yaml_text(text, FILE)


def refused(text: str) -> MatrixError:
    """Load `text`, expecting a MatrixError that renders as exactly one line naming the file."""
    with pytest.raises(MatrixError) as info:
        load(text)
    err = info.value
    rendered = str(err)
    assert rendered.splitlines() == [rendered], rendered
    assert rendered.startswith(f"{FILE}:"), rendered
    assert err.file == FILE
    return err


def nested_flow(depth: int) -> str:
    """`depth` nested flow sequences: `[[[...]]]`."""
    return "[" * depth + "]" * depth


def nested_block(depth: int) -> str:
    """`depth` nested block mappings, one key per line, then a scalar."""
    return "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "leaf\n"


# --- values and line numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("3.10", "3.10"),  # yaml.safe_load gives the float 3.1
        ("3.1", "3.1"),
        ("2.60", "2.60"),
        ("1.0e3", "1.0e3"),
        ("-0.50", "-0.50"),
        (".inf", ".inf"),
        ("'3.10'", "3.10"),
        ('"2.6.0"', "2.6.0"),
        ("2.6.0", "2.6.0"),
        ("1", 1),
        ("true", True),
        ("null", None),
        ("~", None),
        ("registry.example.com", "registry.example.com"),
    ],
)
def test_scalars_keep_their_source_text(source: str, expected: Any) -> None:
    value = load(f"value: {source}\n").data["value"]
    assert value == expected
    assert type(value) is type(expected)


def test_every_key_path_has_its_line() -> None:
    text = (
        "# a comment first\n"  # 1
        "schema: 1\n"  # 2
        "registry:\n"  # 3
        "  host: registry.example.com\n"  # 4
        "  repository: team/air\n"  # 5
        "clouds: [aws,\n"  # 6
        "  azure]\n"  # 7
        "torch:\n"  # 8
        "  - {version: 2.6.0, flash-attn: 2.7.4.post1}\n"  # 9
        "  - version: 2.7.1\n"  # 10
        "    xformers: 0.0.31.post1\n"  # 11
    )
    doc = load(text)
    assert doc.data["torch"][1] == {"version": "2.7.1", "xformers": "0.0.31.post1"}
    expected: dict[KeyPath, int] = {
        (): 2,
        ("schema",): 2,
        ("registry",): 3,
        ("registry", "host"): 4,
        ("registry", "repository"): 5,
        ("clouds",): 6,
        ("clouds", 0): 6,
        ("clouds", 1): 7,
        ("torch",): 8,
        ("torch", 0): 9,
        ("torch", 0, "version"): 9,
        ("torch", 0, "flash-attn"): 9,
        ("torch", 1): 10,
        ("torch", 1, "version"): 10,
        ("torch", 1, "xformers"): 11,
    }
    assert {path: doc.line(path) for path in expected} == expected
    # A path with no line of its own (a default, a shorthand) reports its closest ancestor's line.
    assert doc.line(("torch", 1, "torchvision")) == 10
    assert doc.line(("registry", "host", "deeper", 3)) == 4
    assert doc.line(("nowhere",)) == 2
    err = doc.error(("torch", 1, "xformers"), "why")
    assert str(err) == f"{FILE}:11: torch[1].xformers: why"


def test_an_empty_document_has_no_data_and_no_lines() -> None:
    for text in ("", "\n\n", "# only a comment\n"):
        doc = load(text)
        assert doc.data is None
        assert doc.line(()) is None
    assert load("---\n").data is None


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ((), ""),
        (("schema",), "schema"),
        (("registry", "host"), "registry.host"),
        (("torch", 0, "flash-attn"), "torch[0].flash-attn"),
        (("overrides", 2, "select", "cloud"), "overrides[2].select.cloud"),
        ((3, 1), "[3][1]"),
    ],
)
def test_format_path(path: KeyPath, expected: str) -> None:
    assert format_path(path) == expected


# --- malformed and ambiguous YAML ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "key", "dup"),
    [
        ("schema: 1\nclouds: [aws]\nschema: 1\n", 3, None, "schema"),
        ("registry:\n  host: a.example.com\n  repository: x\n  host: b.example.com\n", 4, "registry", "host"),
        ("registry: {host: a.example.com, host: b.example.com}\n", 1, "registry", "host"),
        (
            "torch:\n  - version: 2.6.0\n    flash-attn: 2.7.4.post1\n    flash-attn: 2.8.3\n",
            4,
            "torch[0]",
            "flash-attn",
        ),
        ("stacks:\n  plain: []\n  'plain': [apex]\n", 3, "stacks", "plain"),
        ('stacks:\n  "flash-attn": []\n  flash-attn: [flash-attn]\n', 3, "stacks", "flash-attn"),
    ],
    ids=["top-level", "block", "flow", "in-list-item", "quoted-vs-plain", "plain-vs-quoted"],
)
def test_duplicate_keys_are_refused(text: str, line: int, key: str | None, dup: str) -> None:
    err = refused(text)
    assert err.line == line
    assert err.key == key
    assert err.message == f"duplicate key {dup!r}"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("schema: 1\nclouds: [aws\nvariants: [runtime]\n", 3, "expected ',' or ']'"),
        ("schema: 1\nclouds: [aws]\n  oops: 1\n", 3, "expected <block end>"),
        ("schema: 1\ntorch:\n\t- 2.6.0\n", 3, "cannot start any token"),
        ("schema: 1\nvariants: runtime: devel\n", 2, "mapping values are not allowed here"),
        ('schema: 1\nvariants: ["\\q"]\n', 2, "unknown escape character"),
        ("schema: 1\nclouds: [aws]\n- devel\n", 3, "expected <block end>"),
        ("schema: 1\n---\nschema: 1\n", 2, "another document"),
    ],
    ids=["unclosed-flow", "bad-indent", "tab", "colon-in-value", "bad-escape", "stray-dash", "two-documents"],
)
def test_malformed_yaml_names_the_line(text: str, line: int, fragment: str) -> None:
    err = refused(text)
    assert err.line == line
    assert err.message.startswith("malformed YAML: ")
    assert fragment in err.message


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("\x07schema: 1\n", 1),  # BEL
        ("schema: 1\nclouds: [aws\x00]\n", 2),  # NUL
        ("schema: 1\nregistry:\n  host: \x1b[2Jevil.example.com\n", 3),  # a terminal escape
    ],
    ids=["bel", "nul", "escape-sequence"],
)
def test_control_characters_in_the_stream_are_malformed_yaml(text: str, line: int) -> None:
    err = refused(text)
    assert err.line == line
    assert err.message.startswith("malformed YAML: ")
    assert "character" in err.message


def test_control_characters_in_the_stream_exit_2_via_cli(write_matrix: WriteMatrix, tmp_path: Path) -> None:
    matrix = write_matrix(MINIMAL.replace("clouds: [aws]", "clouds: [aws\x07]"))
    out = tmp_path / "out"
    result = run_cli("--matrix", str(matrix), "generate", "--out", str(out), timeout=20)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {matrix}:3: malformed YAML: ")
    assert len(result.stderr.splitlines()) == 1
    assert not out.exists()


# --- anchors, aliases, merge keys, tags ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("base: &b [aws]\nclouds: *b\n", 2),
        ("a: &x 1\nb: [1, 2,\n  *x]\n", 3),
        ("&k key: 1\n*k : 2\n", 2),
        ("defaults: &d {cloud: aws}\nexclude:\n  - <<: *d\n    stack: apex\n", 3),
        (BILLION_LAUGHS, 2),
    ],
    ids=["value", "in-flow-list", "as-key", "merge", "billion-laughs"],
)
def test_aliases_are_refused_at_the_first_alias(text: str, line: int) -> None:
    err = refused(text)
    assert err.line == line
    assert "aliases" in err.message
    assert "not supported" in err.message


def test_billion_laughs_is_refused_fast_and_small() -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(MatrixError, match="aliases"):
            load(BILLION_LAUGHS)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 2 << 20  # the document itself is under 1 KiB; nothing is expanded


def test_merge_keys_are_refused() -> None:
    err = refused("exclude:\n  - {cloud: aws}\n  - stack: apex\n    <<: {variant: runtime}\n")
    assert err.line == 4
    assert err.key == "exclude[1]"
    assert "merge keys" in err.message


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("? [a, b]\n: 1\n", 1, None),
        ("stacks:\n  {x: 1}: []\n", 2, "stacks"),
    ],
    ids=["complex-key", "mapping-key"],
)
def test_non_scalar_keys_are_refused(text: str, line: int, key: str | None) -> None:
    err = refused(text)
    assert err.line == line
    assert err.key == key
    assert "plain scalars" in err.message


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        ("!!python/name:os.system ''", "tag:yaml.org,2002:python/name:os.system"),
        ("!!binary aGVsbG8=", "tag:yaml.org,2002:binary"),
        ("!env HOME", "!env"),
        ("2024-01-01", "tag:yaml.org,2002:timestamp"),
    ],
    ids=["python-name", "binary", "local-tag", "implicit-timestamp"],
)
def test_unsupported_scalar_tags_are_refused(value: str, tag: str) -> None:
    err = refused(f"schema: 1\ntorch:\n  - {{version: 2.6.0, flash-attn: {value}}}\n")
    assert err.line == 3
    assert err.key == "torch[0].flash-attn"
    assert err.message == f"unsupported YAML tag {tag!r}"


# --- size, depth, node count ----------------------------------------------------------------------------------


def test_nesting_up_to_the_limit_loads() -> None:
    doc = load(nested_flow(MAX_DEPTH + 1))  # the innermost list sits at depth MAX_DEPTH
    inner = doc.data
    for _ in range(MAX_DEPTH):
        (inner,) = inner
    assert inner == []


@pytest.mark.parametrize("depth", [MAX_DEPTH + 2, 300, 1_000, 100_000])
def test_deep_flow_nesting_is_refused(depth: int) -> None:
    started = time.perf_counter()
    err = refused(nested_flow(depth))
    assert time.perf_counter() - started < 2.0
    assert err.line == 1
    assert err.message == f"nesting deeper than {MAX_DEPTH} levels"


@pytest.mark.parametrize("depth", [MAX_DEPTH + 5, 1_000])
def test_deep_block_nesting_is_refused(depth: int) -> None:
    err = refused(nested_block(depth))
    assert err.line == MAX_DEPTH + 1  # the first key that is too deep
    assert err.message == f"nesting deeper than {MAX_DEPTH} levels"


def test_node_count_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlsource, "MAX_NODES", 10)
    assert load("[" + ", ".join(["0"] * 9) + "]").data == [0] * 9  # 10 nodes: the list and 9 items
    err = refused("[" + ", ".join(["0"] * 10) + "]")
    assert err.message == "document has more than 10 nodes"


def test_a_file_of_exactly_the_size_limit_loads(tmp_path: Path) -> None:
    path = tmp_path / "matrix.yaml"
    padding = MAX_BYTES - len(MINIMAL.encode()) - 1
    path.write_text(MINIMAL + "#" + "x" * (padding - 1) + "\n", encoding="utf-8")
    assert path.stat().st_size == MAX_BYTES
    assert load_yaml(path).data["schema"] == 1


def test_a_file_over_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "matrix.yaml"
    # Over the limit by one byte, and malformed too: the size is reported, so YAML was never parsed.
    path.write_bytes(b"[" * (MAX_BYTES + 1))
    started = time.perf_counter()
    with pytest.raises(MatrixError) as info:
        load_yaml(path)
    assert time.perf_counter() - started < 0.5
    assert str(info.value) == f"{path}: file is {MAX_BYTES + 1} bytes; the limit is {MAX_BYTES}"


def test_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "matrix.yaml"
    path.write_bytes(b"schema: 1\nclouds: [\xffaws]\n")
    with pytest.raises(MatrixError) as info:
        load_yaml(path)
    assert str(info.value) == f"{path}: not UTF-8 (byte 19)"


def test_a_missing_file_is_a_matrix_error(tmp_path: Path) -> None:
    with pytest.raises(MatrixError) as info:
        load_yaml(tmp_path / "nope.yaml")
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}: cannot read: No such file or directory"


# --- hostile files through the CLI: exit 2, one line, quickly, nothing written -------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(
            BILLION_LAUGHS.encode(), (":2: ", "anchors and aliases (*name) are not supported"), id="billion-laughs"
        ),
        pytest.param(
            nested_flow(100_000).encode(), (":1: ", f"nesting deeper than {MAX_DEPTH} levels"), id="deep-flow"
        ),
        pytest.param(
            nested_block(600).encode(),
            (f":{MAX_DEPTH + 1}: ", f"nesting deeper than {MAX_DEPTH} levels"),
            id="deep-block",
        ),
        pytest.param(
            (MINIMAL + "#" * (MAX_BYTES + 10) + "\n").encode(),
            (f": file is {len(MINIMAL) + MAX_BYTES + 11} bytes; the limit is {MAX_BYTES}",),
            id="over-1MiB",
        ),
    ],
)
def test_hostile_files_exit_2_quickly(content: bytes, expected: tuple[str, ...], tmp_path: Path) -> None:
    matrix, out = tmp_path / "matrix.yaml", tmp_path / "images"
    matrix.write_bytes(content)
    started = time.perf_counter()
    result = run_cli("--matrix", str(matrix), "generate", "--out", str(out), timeout=20)
    assert time.perf_counter() - started < 10
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {matrix}")
    for fragment in expected:
        assert fragment in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not out.exists()


def test_a_flat_document_of_a_million_nodes_is_refused_quickly(tmp_path: Path) -> None:
    """Just under the size limit, `[0,0,...]` has ~500k nodes: the node limit must stop it early, not after
    composing the whole document (which takes seconds and hundreds of MiB)."""
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text("[" + "0," * ((MAX_BYTES - 3) // 2) + "0]", encoding="utf-8")
    assert matrix.stat().st_size <= MAX_BYTES
    # Raises TimeoutExpired when slow. Seconds, not a benchmark: without the bound it takes minutes, and the
    # shared 2-core machines have been seen to need more than 5 s for the bounded refusal under load.
    result = run_cli("--matrix", str(matrix), "list", timeout=30)
    assert result.returncode == 2
    assert f"document has more than {MAX_NODES} nodes" in result.stderr
    assert len(result.stderr.splitlines()) == 1


# --- files that are not files: a device, a FIFO, a directory -------------------------------------------------


def _run_capped(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI with its address space capped at 1 GiB: a reader without a bound fails fast with MemoryError
    (exit 1, a traceback) instead of eating the machine's memory until the kernel kills it."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run(
        [sys.executable, "-m", "generator", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=20,  # a FIFO with no writer blocks a plain open() for ever: TimeoutExpired on the old reader
        check=False,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        preexec_fn=cap,  # runs between fork and exec: only a setrlimit call, nothing that takes a lock
    )


@pytest.mark.parametrize("kind", ["device", "fifo", "directory"])
def test_a_matrix_that_is_not_a_regular_file_is_refused_at_once(kind: str, tmp_path: Path) -> None:
    """`--matrix /dev/zero` once read until the kernel killed the process: st_size is 0 for a device."""
    if kind == "device":
        matrix, why = Path("/dev/zero"), "not a regular file (a character device)"
    elif kind == "fifo":
        matrix, why = tmp_path / "matrix.yaml", "not a regular file (a FIFO)"
        os.mkfifo(matrix)
    else:
        matrix, why = tmp_path / "matrix.yaml", "not a regular file (a directory)"
        matrix.mkdir()
    out = tmp_path / "images"
    result = _run_capped("--matrix", str(matrix), "generate", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr == f"error: {matrix}: {why}\n"
    assert not out.exists()


def test_a_ca_certificate_that_is_a_device_is_refused_at_once(tmp_path: Path) -> None:
    """`extra_ca_certificates: [/dev/zero]` read without limit too; now one line naming the matrix line."""
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(MINIMAL + "extra_ca_certificates: [/dev/zero]\n", encoding="utf-8")
    line = MINIMAL.count("\n") + 1
    result = _run_capped("--matrix", str(matrix), "list", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr == (
        f"error: {matrix}:{line}: extra_ca_certificates[0]: cannot read a PEM file at /dev/zero: "
        "not a regular file (a character device)\n"
    )


def test_read_bounded_reads_at_most_one_byte_past_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 11)
    assert read_bounded(path, 11) == b"x" * 11
    with pytest.raises(Refused) as info:
        read_bounded(path, 10)
    assert info.value.strerror == "file is 11 bytes; the limit is 10"
    # A file whose size says nothing (procfs says 0): the bound is what is read, not what stat says.
    with pytest.raises(Refused) as info:
        read_bounded(Path("/proc/self/maps"), 10)
    assert info.value.strerror == "file is more than 10 bytes; the limit is 10"
