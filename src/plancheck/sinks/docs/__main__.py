"""`python -m plancheck.sinks.docs [OUT_DIR] [--rules-dir DIR]`: write the reference pages (default docs/reference)."""

from __future__ import annotations

import sys
from pathlib import Path

from plancheck.errors import InputError
from plancheck.rulebook.resources import default_rules_dir
from plancheck.sinks.docs import render_reference, write_reference


def main(argv: list[str]) -> int:
    args = list(argv)
    rules_dir = default_rules_dir()
    if "--rules-dir" in args:
        at = args.index("--rules-dir")
        if at + 1 >= len(args):
            print("error: --rules-dir needs a directory", file=sys.stderr)
            return 2
        rules_dir = Path(args[at + 1])
        del args[at:at + 2]
    if len(args) > 1 or any(a.startswith("-") for a in args):
        print("usage: python -m plancheck.sinks.docs [OUT_DIR] [--rules-dir DIR]", file=sys.stderr)
        return 2
    out_dir = Path(args[0]) if args else Path("docs/reference")
    try:
        pages = render_reference(rules_dir)
    except InputError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    removed = write_reference(pages, out_dir)
    print(f"{len(pages)} pages in {out_dir}" + (f"; removed {len(removed)} stale" if removed else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
