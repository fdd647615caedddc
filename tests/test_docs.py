"""The docs' own checks (docs/_ext/lxactors_docs.py), on a scratch project (no containers).

``./go test`` builds the real docs with ``-n -W``; these show that the build
would fail for what it must refuse: a public name without a docstring (a
dataclass's generated one and a bare constant count as none), a public name
in no page, an undocumented public member of the checked class; and that the
repository links of an included README or a guide in docs/ are pointed at
pages, downloads and anchors.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("myst_parser")

REPO = Path(__file__).resolve().parent.parent
EXT = REPO / "docs" / "_ext"

MODULE = '''
"""A scratch package."""
from dataclasses import dataclass

__all__ = ["documented", "bare", "Record", "Noted", "LIMIT", "NAKED", "hidden"]

#: Documented with a comment.
LIMIT = 3
NAKED = 4


def documented() -> None:
    """Has a docstring."""


def bare() -> None:
    pass


def hidden() -> None:
    """Documented, but on no page."""


@dataclass(frozen=True)
class Record:
    x: int


@dataclass(frozen=True)
class Noted:
    """A record with a docstring of its own."""

    x: int


class Thing:
    """The class whose members are checked."""

    def said(self) -> None:
        """Documented."""

    def unsaid(self) -> None:
        pass

    @property
    def prop(self) -> int:
        return 1
'''

CONF = '''
import sys
sys.path.insert(0, {ext!r})
sys.path.insert(0, {pkg!r})
import lxactors_docs
lxactors_docs.PUBLIC = ("scratch",)
lxactors_docs.ALIASES = {{}}
lxactors_docs.MEMBERS_OF = "scratch.Thing"
lxactors_docs.INCLUDED = {{"README.md": "readme", "examples/x/README.md": "example"}}
extensions = ["sphinx.ext.autodoc", "myst_parser", "lxactors_docs"]
source_suffix = {{".rst": "restructuredtext", ".md": "markdown"}}
myst_heading_anchors = 3
'''

INDEX = '''
Scratch
=======

.. toctree::

   readme
   example
   other

.. automodule:: scratch
   :members: documented, bare, Record, Noted, LIMIT, NAKED

.. autoclass:: scratch.Thing
   :members: said, unsaid, prop
'''

README = '''# Scratch

## Security

See [the example](examples/x/README.md), [a file](examples/x/run.py),
[the guide](docs/other.md#part) and [above](#security).
'''


def _build(tmp_path: Path) -> tuple[int, str, Path]:
    repo = tmp_path / "repo"
    src = repo / "docs"
    pkg = tmp_path / "pkg"
    (repo / "examples" / "x").mkdir(parents=True)
    src.mkdir()
    pkg.mkdir()
    (pkg / "scratch.py").write_text(MODULE)
    (src / "conf.py").write_text(CONF.format(ext=str(EXT), pkg=str(pkg)))
    (src / "index.rst").write_text(textwrap.dedent(INDEX))
    (src / "readme.md").write_text("```{include} ../README.md\n```\n")
    (src / "example.md").write_text("```{include} ../examples/x/README.md\n```\n")
    (src / "other.md").write_text("# Other\n\n## Part\n\n[up](../README.md#security), "
                                  "[the folder](../examples/x/), [a file](../examples/x/run.py)\n")
    (repo / "README.md").write_text(README)
    (repo / "examples" / "x" / "README.md").write_text("# Example\n\n[back](../../README.md#security)\n")
    (repo / "examples" / "x" / "run.py").write_text("print('hi')\n")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-E", "-n", "-q", "-b", "html", str(src), str(out)],
        capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stderr, out


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    return _build(tmp_path_factory.mktemp("docs"))


def _flagged(stderr: str, kind: str) -> set[str]:
    marker = {"undocumented": " has no docstring", "unrendered": " is public but in no page"}[kind]
    return {line.split("WARNING: ", 1)[1].split(marker)[0]
            for line in stderr.splitlines() if marker in line and "WARNING: " in line}


def test_names_without_a_docstring_are_warned(build: tuple[int, str, Path]) -> None:
    rc, stderr, _ = build
    assert rc == 0, stderr
    assert _flagged(stderr, "undocumented") == {
        "scratch.bare", "scratch.Record", "scratch.NAKED",
        "scratch.Thing.unsaid", "scratch.Thing.prop"}, stderr


def test_names_in_no_page_are_warned(build: tuple[int, str, Path]) -> None:
    _, stderr, _ = build
    unrendered = _flagged(stderr, "unrendered")
    assert "scratch.hidden" in unrendered, stderr
    # (autodoc leaves out what has no docstring: those are flagged twice)
    assert not unrendered & {"scratch.documented", "scratch.Noted", "scratch.LIMIT",
                             "scratch.Thing.said"}, stderr


def test_warnings_fail_the_build_with_W(tmp_path: Path) -> None:
    rc, stderr, _ = _build(tmp_path)
    assert rc == 0, stderr
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-E", "-n", "-W", "-q", "-b", "html",
         str(tmp_path / "repo" / "docs"), str(tmp_path / "out-w")],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "scratch.bare has no docstring" in proc.stderr


def test_included_readme_links_point_at_pages(build: tuple[int, str, Path]) -> None:
    _, stderr, out = build
    assert "xref_missing" not in stderr, stderr
    readme = (out / "readme.html").read_text()
    assert 'href="example.html"' in readme
    assert 'href="other.html#part"' in readme
    assert 'href="#security"' in readme
    assert "_downloads/" in readme and (next(out.glob("_downloads/*/run.py"))).exists()
    example = (out / "example.html").read_text()
    assert 'href="readme.html#security"' in example


def test_guide_links_out_of_docs(build: tuple[int, str, Path]) -> None:
    _, stderr, out = build
    assert "xref_missing" not in stderr, stderr
    other = (out / "other.html").read_text()
    assert 'href="readme.html#security"' in other
    assert "the folder" in other  # a folder has no page: its name stays, unlinked
    assert other.count("_downloads/") == 1, other
