"""Safe YAML and JSON reading that keeps line numbers and rejects duplicate keys."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from plancheck.errors import InputError, Problem, shown

#: Deepest nesting of mappings and lists a document may have (plan documents need about five).
MAX_NESTING = 100
_TOO_DEEP = f"nesting deeper than {MAX_NESTING} levels"
#: The largest document read (YAML or JSON): a plan or rule file is a few KB, a withdrawals file of 4 MB holds
#: about 50,000 requests (a larger batch belongs in CSV).
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
#: The most values (scalars, lists, mappings) a YAML document may hold once its aliases are expanded: what every
#: reader of the data (validation, rule conditions, the service's JSON) walks. A "billion laughs" file of a few
#: hundred bytes of nested aliases expands to hundreds of millions.
MAX_NODES = 500_000
#: The most aliases (`*name`) a YAML document may use.
MAX_ALIASES = 10_000


class LineDict(dict):
    """A mapping read from YAML that remembers the line of each key (1-based)."""

    line: int = 0
    key_lines: dict[str, int]


try:  # libyaml's scanner and parser (C), under PyYAML's own composer so the budget below still counts each node
    from yaml._yaml import CParser as _Parser
except ImportError:  # pragma: no cover - PyYAML built without libyaml: the pure-Python parser, ~5x slower
    from yaml.parser import Parser as _PyParser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Parser(Reader, Scanner, _PyParser):  # type: ignore[no-redef]
        def __init__(self, stream):
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            _PyParser.__init__(self)


class _LineLoader(yaml.composer.Composer, _Parser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
    """A safe loader (SafeConstructor: plain data only) that records key lines, refuses duplicate keys, and keeps
    to a budget.

    Its events come from libyaml's C parser where PyYAML has it (parsing the ~130 rule files is most of an
    election's start-up in pure Python); the composer above it is PyYAML's Python one, so each node passes
    through `compose_node` here.

    PyYAML composes nodes recursively, so a document nested 10,000 levels deep would end in a
    RecursionError; counting the depth here turns it into an ordinary YAML error with a line.
    Aliases share one node, so a file of nested aliases composes in no time and explodes in
    whoever walks the data: each node's expanded size and height are counted as it is composed,
    an alias adds its anchor's, and a document over MAX_NODES, MAX_NESTING (expanded) or
    MAX_ALIASES stops at the alias that crossed it, with its line. An alias inside its own anchor
    (a recursive document) is refused too.
    """

    _depth = 0

    def __init__(self, stream):
        _Parser.__init__(self, stream)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        yaml.composer.Composer.__init__(self)
        self._nodes = 0
        self._aliases = 0
        self._children: list[list[int]] = []  # per open node: [expanded size, height] of its children so far

    def _stop(self, problem: str, mark) -> None:
        raise yaml.composer.ComposerError(None, None, problem, mark)

    def compose_node(self, parent, index):
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            anchor = self.anchors.get(event.anchor)
            if anchor is not None:
                self._alias(anchor, event.start_mark)
            node = super().compose_node(parent, index)
            self._count(node.plancheck_size, node.plancheck_height)
            return node
        self._depth += 1
        self._children.append([0, 0])
        try:
            if self._depth > MAX_NESTING:
                self._stop(_TOO_DEEP, self.peek_event().start_mark)
            self._nodes += 1
            if self._nodes > MAX_NODES:
                self._stop(f"more than {MAX_NODES:,} values", self.peek_event().start_mark)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            size, height = self._children.pop()
        node.plancheck_size, node.plancheck_height = 1 + size, 1 + height
        self._count(node.plancheck_size, node.plancheck_height)
        return node

    def _count(self, size: int, height: int) -> None:
        if self._children:
            totals = self._children[-1]
            totals[0] += size
            totals[1] = max(totals[1], height)

    def _alias(self, anchor, mark) -> None:
        if not hasattr(anchor, "plancheck_size"):
            self._stop("an alias inside the node it names (a recursive document)", mark)
        self._aliases += 1
        if self._aliases > MAX_ALIASES:
            self._stop(f"more than {MAX_ALIASES:,} aliases", mark)
        self._nodes += anchor.plancheck_size
        if self._nodes > MAX_NODES:
            self._stop(f"aliases expand the document past {MAX_NODES:,} values (nested aliases: a 'billion "
                       "laughs' file?)", mark)
        if self._depth + anchor.plancheck_height > MAX_NESTING:
            self._stop(f"{_TOO_DEEP} once its aliases are expanded", mark)


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int)):
            raise yaml.constructor.ConstructorError(
                None, None, f"mapping keys must be text or numbers, got {shown(key)}", key_node.start_mark
            )
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {shown(key)}", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# Dates stay text: the models parse them, so an impossible date (2024-02-30) is reported
# with its field and line instead of failing inside the YAML parser.
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}


def _too_large(text: str | bytes, source: str) -> None:
    if len(text) > MAX_DOCUMENT_BYTES:
        raise InputError(Problem(source, "", f"larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB; a document "
                                 "(plan, rule, election, requests) must be smaller (bulk requests go in CSV)"))


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text safely (SafeLoader, within the budget above); errors become an InputError with the line."""
    _too_large(text, source)
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader constructs with SafeConstructor
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or str(exc)
        if problem == "exceeded maximum nesting depth":  # libyaml's own limit (1,000) met before ours
            problem = _TOO_DEEP
        raise InputError(Problem(source, "", f"invalid YAML: {problem}", line)) from None
    except yaml.YAMLError as exc:
        raise InputError(Problem(source, "", f"invalid YAML: {exc}")) from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    result: dict = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {shown(key)}")
        result[key] = value
    return result


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def json_nesting(text: str) -> int:
    """How deeply the arrays and objects of a JSON text nest (strings left out), without parsing it."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)).encode()
    if not brackets:
        return 0
    import numpy as np  # here, not at the top: `schema` and `--help` read no JSON and load no numpy

    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def parse_json(text: str, source: str) -> Any:
    """Parse JSON text; syntax errors and nesting beyond MAX_NESTING become an InputError with the line."""
    _too_large(text, source)
    if json_nesting(text) > MAX_NESTING:
        raise InputError(Problem(source, "", f"invalid JSON: {_TOO_DEEP}"))
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise InputError(Problem(source, "", f"invalid JSON: {exc.msg}", exc.lineno)) from None
    except ValueError as exc:
        raise InputError(Problem(source, "", f"invalid JSON: {exc}")) from None


def read_document(path: Path) -> Any:
    """Read a YAML (.yaml/.yml) or JSON (.json) file."""
    source = str(path)
    try:
        with path.open("rb") as handle:  # never more than the budget into memory
            data = handle.read(MAX_DOCUMENT_BYTES + 1)
        _too_large(data, source)
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise InputError(Problem(source, "", "file not found")) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(Problem(source, "", f"cannot read file: {exc}")) from None
    if path.suffix.lower() == ".json":
        return parse_json(text, source)
    return parse_yaml(text, source)


def line_of(data: Any, loc: tuple[Any, ...]) -> int | None:
    """Best line for a pydantic error location inside data read by parse_yaml."""
    line = getattr(data, "line", None) or None
    node = data
    for part in loc:
        if isinstance(node, LineDict):
            if part in node:
                line = node.key_lines.get(part, line)
                node = node[part]
                continue
            return line
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            line = getattr(node, "line", None) or line
            continue
        break
    return line


def field_path(loc: tuple[Any, ...], data: Any = None) -> str:
    """Render a pydantic location as a dotted path, with [index] for list positions."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int) and isinstance(node, list):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
        try:
            node = node[part] if node is not None else None
        except (KeyError, IndexError, TypeError):
            node = None
    return out


def validation_problems(exc: ValidationError, data: Any, source: str) -> InputError:
    """Turn a pydantic ValidationError into an InputError with lines and fields."""
    problems = []
    for err in exc.errors(include_url=False):
        # Drop pydantic's internal discriminator/union tags from the location.
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
        expected = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if err["type"] == "extra_forbidden":
            expected = "unknown key (not part of the schema; check the spelling)"
        elif err["type"] == "missing":
            expected = "required key is missing"
        got = None
        if err["type"] not in ("missing", "extra_forbidden") and not isinstance(err.get("input"), (dict, list)):
            got = shown(err.get("input"))
        problems.append(Problem(source, field_path(loc, data), expected, line_of(data, loc), got))
    return InputError(problems)
