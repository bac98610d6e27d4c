"""The one build step pyproject.toml cannot declare: copy the repository's rules/, plans/ and samples/ into the
package as plancheck/_bundled/, so that an installed wheel runs outside the checkout. rules/ and plans/ stay at
the repository's root, where administrators, the tests and the README look for them; an editable install reads
them there (src/plancheck/rulebook/resources.py), so nothing is copied for it."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLED = ("rules", "plans", "samples")


class BuildWithData(build_py):
    """build_py, then the data directories into build/lib/plancheck/_bundled/ (from there into the wheel)."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "plancheck" / "_bundled"
        shutil.rmtree(target, ignore_errors=True)  # a file deleted from rules/ must not live on from an old build/
        for name in BUNDLED:
            shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"))


setup(cmdclass={"build_py": BuildWithData})
