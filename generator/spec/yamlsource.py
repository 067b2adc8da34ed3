"""Safe YAML loading that remembers where every value came from.

Why not `yaml.safe_load`: it silently keeps the last of duplicate keys, expands aliases (a "billion
laughs" document can hang whatever walks the result), turns `3.10` into the float 3.1, and forgets line
numbers. This loader rejects duplicates and aliases, keeps float-looking scalars as their source text
(versions are never floats here), bounds size and depth, and returns a `Located` tree: plain Python values
plus a map from key path to line number for error messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from generator.errors import MatrixError
from generator.spec.userfiles import MAX_BYTES, Refused, read_bounded

MAX_DEPTH = 32
MAX_NODES = 100_000

KeyPath = tuple[str | int, ...]


def format_path(path: KeyPath) -> str:
    """`("torch", 1, "version")` -> `torch[1].version`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass
class Located:
    """A loaded document: the data, and the line each key path was written on."""

    file: Path
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line(self, path: KeyPath) -> int | None:
        """Line of `path`, or of its closest ancestor that has one."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]

    def error(self, path: KeyPath, message: str) -> MatrixError:
        return MatrixError(message, file=self.file, line=self.line(path), key=format_path(path) or None)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases, and bounds depth and node count WHILE composing.

    PyYAML's composer is recursive and builds the whole tree before anyone looks at it: the limits must
    apply here, or a 1 KiB `[[[[...` document ends in RecursionError and a flat one in seconds of work.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            raise _Refused("anchors and aliases (*name) are not supported; write the value out", line)
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _Refused(f"document has more than {MAX_NODES} nodes", line)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH + 1:  # the root is depth 1; MAX_DEPTH counts levels below it
                raise _Refused(f"nesting deeper than {MAX_DEPTH} levels", line)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _Refused(Exception):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


_FLOAT_TAG = "tag:yaml.org,2002:float"
_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    _FLOAT_TAG,
}


def load_yaml(path: Path) -> Located:
    """Load `path` strictly; raise MatrixError (file:line: message) on anything malformed or hostile."""
    try:
        raw = read_bounded(path, MAX_BYTES)  # also refuses /dev/zero, a FIFO, a directory: one line each
    except Refused as exc:
        raise MatrixError(str(exc.strerror), file=path) from None
    except OSError as exc:
        raise MatrixError(f"cannot read: {exc.strerror}", file=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MatrixError(f"not UTF-8 (byte {exc.start})", file=path) from exc
    return load_yaml_text(text, path)


def load_yaml_text(text: str, path: Path) -> Located:
    loader: _StrictLoader | None = None
    try:
        loader = _StrictLoader(text)  # the reader rejects unprintable characters right here
        root = loader.get_single_node()
    except _Refused as exc:
        raise MatrixError(exc.message, file=path, line=exc.line) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise MatrixError(f"malformed YAML: unprintable character {exc.character!r}", file=path, line=line) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "malformed YAML"
        raise MatrixError(
            f"malformed YAML: {problem}", file=path, line=mark.line + 1 if mark is not None else None
        ) from None
    except yaml.YAMLError as exc:
        raise MatrixError(f"malformed YAML: {exc}", file=path) from None
    finally:
        if loader is not None:
            loader.dispose()
    doc = Located(file=path, data=None)
    if root is None:
        return doc
    doc.data = _convert(root, (), doc, loader)
    return doc


def _convert(node: yaml.Node, path: KeyPath, doc: Located, loader: _StrictLoader) -> Any:
    """Node tree -> plain values, recording lines (size and depth were bounded while composing)."""
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        if node.tag != "tag:yaml.org,2002:map":
            raise doc.error(path, f"unsupported YAML tag {node.tag!r}")
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                raise MatrixError(
                    "mapping keys must be plain scalars (no merge keys)",
                    file=doc.file,
                    line=key_node.start_mark.line + 1,
                    key=format_path(path) or None,
                )
            key = str(key_node.value)
            if key in out:
                raise MatrixError(
                    f"duplicate key {key!r}",
                    file=doc.file,
                    line=key_node.start_mark.line + 1,
                    key=format_path(path) or None,
                )
            child = (*path, key)
            doc.lines[child] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, child, doc, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        if node.tag != "tag:yaml.org,2002:seq":
            raise doc.error(path, f"unsupported YAML tag {node.tag!r}")
        return [_convert(item, (*path, i), doc, loader) for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    if node.tag not in _SCALAR_TAGS:
        raise doc.error(path, f"unsupported YAML tag {node.tag!r}")
    if node.tag == _FLOAT_TAG:
        # `3.10` must stay "3.10": every number-with-a-dot in a matrix is a version.
        return str(node.value)
    return loader.construct_object(node, deep=True)
