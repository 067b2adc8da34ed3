"""`generate`: incremental, atomic, removes only what it made, `--check` writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import DEFAULT_MATRIX, ROOT, WriteMatrix, run_cli

MATRIX = """\
schema: 1
registry: {host: registry.example.com, repository: team/air}
clouds: [aws, azure]
variants: [runtime]
accelerators: [GPU_1xA10]
torch:
  - {version: 2.6.0, xformers: 0.0.29.post3}
  - {version: 2.7.1, xformers: 0.0.31.post1}
stacks:
  plain: []
  xformers: [xformers]
"""


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under root: bytes and mtime in ns."""
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()
    }


def generate(matrix: Path, out: Path, *extra: str) -> dict[str, object]:
    result = run_cli("--matrix", str(matrix), "generate", "--out", str(out), "--json", *extra)
    assert result.returncode in (0, 1), result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    data["rc"] = result.returncode
    return data


def test_cold_then_noop_then_one_pin(write_matrix: WriteMatrix, tmp_path: Path) -> None:
    matrix, out = write_matrix(MATRIX), tmp_path / "images"
    cold = generate(matrix, out)
    assert cold["cells"] == 8 and cold["written"] == 8 * 9 + 1  # 9 files per cell + index.json
    first = snapshot(out)

    noop = generate(matrix, out)
    assert noop["written"] == 0 and noop["removed"] == 0
    assert snapshot(out) == first  # same bytes AND same mtimes: Make stays quiet


def test_one_pin_change_rewrites_only_affected_cells(write_matrix: WriteMatrix, tmp_path: Path) -> None:
    text = MATRIX.replace("variants: [runtime]", "variants: [runtime, devel]")
    matrix, out = write_matrix(text), tmp_path / "images"
    generate(matrix, out)
    before = snapshot(out)
    # Spelling out the knowledge default changes nothing.
    matrix.write_text(text.replace("{version: 2.6.0,", "{version: 2.6.0, torchvision: 0.21.0,"), encoding="utf-8")
    assert generate(matrix, out)["written"] == 0  # same value as the knowledge default: a no-op
    # The 2.6 row moves to the PyTorch index's cu124 build (same CUDA and ABI, so xformers still matches).
    matrix.write_text(text.replace("{version: 2.6.0,", "{version: 2.6.0, index: cu124,"), encoding="utf-8")
    generate(matrix, out)
    after = snapshot(out)
    touched = {path.split("/")[0] for path in after if before.get(path, (b"", 0))[0] != after[path][0]}
    expected = {d for d in (p.split("/")[0] for p in after) if "torch2.6" in d}
    assert touched == expected | {"index.json"}
    assert len(expected) == 8


def test_removed_cells_go_and_foreign_directories_stay(write_matrix: WriteMatrix, tmp_path: Path) -> None:
    matrix, out = write_matrix(MATRIX), tmp_path / "images"
    generate(matrix, out)
    (out / "README.md").write_text("hand-written\n")
    (out / "notes").mkdir()
    (out / "notes" / "todo.txt").write_text("keep me\n")
    staged = out / "aws-runtime-torch2.7" / "wheels"
    staged.mkdir()
    (staged / "x.whl").write_bytes(b"staged by fetch")

    matrix.write_text(MATRIX.replace("clouds: [aws, azure]", "clouds: [aws]"), encoding="utf-8")
    result = generate(matrix, out)
    assert result["removed"] == 4
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "aws-runtime-torch2.6",
        "aws-runtime-torch2.6-xformers0.0.29.post3",
        "aws-runtime-torch2.7",
        "aws-runtime-torch2.7-xformers0.0.31.post1",
        "index.json",
        "notes",
    ]
    assert (out / "notes" / "todo.txt").read_text() == "keep me\n"
    assert (staged / "x.whl").read_bytes() == b"staged by fetch"  # fetched artifacts are not "stale"


def test_a_file_no_longer_generated_is_removed(write_matrix: WriteMatrix, tmp_path: Path) -> None:
    matrix, out = write_matrix(MATRIX), tmp_path / "images"
    generate(matrix, out)
    cell = out / "aws-runtime-torch2.6"
    meta = json.loads((cell / "cell.json").read_text())
    meta["files"].append("OLD.md")  # as if an earlier generator version had written OLD.md
    (cell / "cell.json").write_text(json.dumps(meta))
    (cell / "OLD.md").write_text("old\n")
    (cell / "mine.txt").write_text("not generated, not listed\n")
    generate(matrix, out)
    assert not (cell / "OLD.md").exists()
    assert (cell / "mine.txt").exists()


def test_check_lists_stale_and_writes_nothing(write_matrix: WriteMatrix, tmp_path: Path) -> None:
    matrix, out = write_matrix(MATRIX), tmp_path / "images"
    generate(matrix, out)
    dockerfile = out / "aws-runtime-torch2.6" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "RUN echo hand edit\n")
    (out / "azure-runtime-torch2.7" / "air.yaml").unlink()
    before = snapshot(out)

    result = run_cli("--matrix", str(matrix), "generate", "--out", str(out), "--check")
    assert result.returncode == 1
    assert "aws-runtime-torch2.6/: changed Dockerfile" in result.stdout
    assert "azure-runtime-torch2.7/: new air.yaml" in result.stdout
    assert "2 stale" in result.stdout
    assert snapshot(out) == before

    generate(matrix, out)
    assert run_cli("--matrix", str(matrix), "generate", "--out", str(out), "--check").returncode == 0


def test_writes_are_atomic_and_leave_no_temp_files(write_matrix: WriteMatrix, tmp_path: Path) -> None:
    matrix, out = write_matrix(MATRIX), tmp_path / "images"
    generate(matrix, out)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    modes = {oct(p.stat().st_mode & 0o777) for p in out.rglob("*") if p.is_file()}
    assert modes == {"0o644"}


def test_failed_generate_leaves_images_untouched(write_matrix: WriteMatrix, tmp_path: Path) -> None:
    matrix, out = write_matrix(MATRIX), tmp_path / "images"
    generate(matrix, out)
    before = snapshot(out)
    # A FAILing cell (xformers pinned to the wrong torch) refuses the whole generate.
    matrix.write_text(MATRIX.replace("xformers: 0.0.31.post1", "xformers: 0.0.29.post3"), encoding="utf-8")
    result = run_cli("--matrix", str(matrix), "generate", "--out", str(out))
    assert result.returncode == 2
    assert "FAILs its checks" in result.stderr and "pins torch==2.6.0" in result.stderr
    assert snapshot(out) == before


def test_committed_images_are_up_to_date() -> None:
    """The same check CI runs: images/ in the repository equals a fresh render of matrix.yaml."""
    result = run_cli("--matrix", str(DEFAULT_MATRIX), "generate", "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    index = json.loads((ROOT / "images" / "index.json").read_text())
    dirs = sorted(p.name for p in (ROOT / "images").iterdir() if p.is_dir())
    assert sorted(c["dir"] for c in index["cells"]) == dirs
    assert os.environ.get("CI") != "true" or dirs  # CI never passes with an empty images/


# A `generate` that SIGKILLs itself in the middle of its Nth file write, right after write_atomic made the temp
# file: the same state a kill from outside leaves, at a chosen moment instead of a random one.
KILLED_GENERATE = textwrap.dedent(
    """
    import os, signal, sys
    from generator.cli import main

    real, calls = os.fchmod, 0

    def fchmod(fd, mode):  # write_atomic calls it once per file, on the fresh temp file
        global calls
        real(fd, mode)
        calls += 1
        if calls == int(os.environ["KILL_AT_WRITE"]):
            os.kill(os.getpid(), signal.SIGKILL)

    os.fchmod = fchmod
    sys.exit(main(sys.argv[1:]))
    """
)


def killed_generate(matrix: Path, out: Path, at_write: int) -> None:
    argv = [sys.executable, "-c", KILLED_GENERATE, "--matrix", str(matrix), "generate", "--out", str(out)]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "KILL_AT_WRITE": str(at_write)}
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == -9, done.stderr  # killed, no cleanup ran


def temp_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.tmp"))


def test_strays_of_a_killed_run_are_reported_by_check_and_removed_by_a_rerun(
    write_matrix: WriteMatrix, tmp_path: Path
) -> None:
    """SIGKILL runs no cleanup: 8 of 35 kills on a 1,020-cell matrix left `.NAME.XXXXXXXX.tmp` files that neither
    a re-run nor `--check` noticed."""
    matrix, out = write_matrix(MATRIX), tmp_path / "images"
    killed_generate(matrix, out, at_write=3)
    killed_generate(matrix, out, at_write=5)  # a re-run killed before it got to removing the first one's
    strays = temp_files(out)
    assert len(strays) == 2, strays
    # Look-alikes that are not write_atomic's temp file of a generated file: never touched.
    keep = [
        out / "aws-runtime-torch2.6" / ".Dockerfile.tmp",  # no random part
        out / "aws-runtime-torch2.6" / ".Dockerfile.abcdefg.tmp",  # 7 characters, not 8
        out / "aws-runtime-torch2.6" / "Dockerfile.abcdefgh.tmp",  # no leading dot
        out / "aws-runtime-torch2.6" / ".notes.md.abcdefgh.tmp",  # notes.md is not a generated file
        out / "mine" / ".Dockerfile.abcdefgh.tmp",  # a directory the generator did not make
    ]
    for path in keep:
        path.parent.mkdir(exist_ok=True)
        path.write_text("someone else's\n")

    check = generate(matrix, out, "--check")
    assert check["rc"] == 1
    changes = check["changes"]
    assert isinstance(changes, list)
    reported = sorted(Path(c["path"]).relative_to(out).as_posix() for c in changes if c["action"] == "remove")
    assert reported == strays and {c["reason"] for c in changes if c["action"] == "remove"} == {"left by a killed run"}
    said = run_cli("--matrix", str(matrix), "generate", "--out", str(out), "--check").stdout
    assert all(f"removed (temp file of a killed run) {s.partition('/')[2] or s}" in said for s in strays), said
    assert temp_files(out) == sorted([*strays, *(p.relative_to(out).as_posix() for p in keep)])  # wrote nothing

    rerun = generate(matrix, out)
    assert rerun["removed"] == 2
    assert temp_files(out) == sorted(p.relative_to(out).as_posix() for p in keep)
    assert run_cli("--matrix", str(matrix), "generate", "--out", str(out), "--check").returncode == 0
