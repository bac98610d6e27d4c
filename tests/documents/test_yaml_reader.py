"""The YAML reader gives the same data, key lines and errors whether PyYAML has libyaml's C parser or not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

_PROBE = """
import json, sys
{block}
from pathlib import Path
from plancheck.documents import yamlio
from plancheck.errors import InputError

def lines(o):
    if isinstance(o, dict):
        return [[o.line, o.key_lines]] + [l for v in o.values() for l in lines(v)]
    if isinstance(o, list):
        return [l for v in o for l in lines(v)]
    return []

out = {{"parser": yamlio._Parser.__module__}}
for path in sys.argv[1:]:
    try:
        data = yamlio.parse_yaml(Path(path).read_text(), path)
        out[path] = [data, lines(data)]
    except InputError as exc:
        out[path] = str(exc)
print(json.dumps(out, sort_keys=True, default=str))
"""


def _read(paths: list[str], *, without_libyaml: bool) -> dict:
    block = "sys.modules['yaml._yaml'] = None" if without_libyaml else ""
    result = subprocess.run([sys.executable, "-c", _PROBE.format(block=block), *paths], capture_output=True,
                            text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_c_and_python_parsers_read_every_bundled_document_and_each_bad_one_alike(tmp_path: Path):
    bad = {
        "tab.yaml": "a:\n\tb: 1\n",
        "unclosed.yaml": "a: [1, 2\nb: 3\n",
        "duplicate.yaml": "a: 1\nb: 2\na: 3\n",
        "bomb.yaml": "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
            f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8)),
        "deep.yaml": "a: " + "[" * 150 + "]" * 150 + "\n",
    }
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
    paths = sorted(str(p.relative_to(ROOT)) for pattern in ("rules/**/*.yaml", "plans/*.yaml", "samples/**/*.yaml")
                   for p in ROOT.glob(pattern))
    paths += sorted(str(p) for p in tmp_path.iterdir())
    fast, slow = _read(paths, without_libyaml=False), _read(paths, without_libyaml=True)
    assert fast.pop("parser") == "yaml._yaml" and slow.pop("parser") != "yaml._yaml"
    syntax = [str(tmp_path / name) for name in ("tab.yaml", "unclosed.yaml")]  # libyaml words these its own way
    assert {k: v for k, v in fast.items() if k not in syntax} == {k: v for k, v in slow.items() if k not in syntax}
    for path in syntax:  # ... on the same line
        assert fast[path].split(" invalid YAML: ")[0] == slow[path].split(" invalid YAML: ")[0]
    assert all(isinstance(fast[str(tmp_path / name)], str) for name in bad)  # each bad one is an error
    assert "duplicate key 'a'" in fast[str(tmp_path / "duplicate.yaml")]
    assert ":3:" in fast[str(tmp_path / "duplicate.yaml")]
