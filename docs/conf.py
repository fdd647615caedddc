"""Sphinx configuration for lxactors' reference documentation (``./go docs``).

Why Sphinx: the docstrings are already written in reST (``:func:``,
``:class:``, ````literal````), so autodoc renders them as they are, and
``-n -W`` turns every broken cross-reference into a failure.  The Markdown
guides (docs/*.md, the README) come in through myst-parser.  The theme is
Sphinx's own alabaster (no theme dependency); intersphinx is off (CI has no
network), so references to other projects' names are listed in
``nitpick_ignore_regex`` instead of linked.  ``_ext/lxactors_docs.py`` fails
the build on an undocumented public name and renders the CLI from its parser.
"""

from __future__ import annotations

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "_ext"))

project = "lxactors"
author = "the lxactors authors"
copyright = "lxactors authors"

extensions = [
    "sphinx.ext.autodoc",
    "myst_parser",
    "lxactors_docs",
]

root_doc = "index"
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "bench", "_ext"]
html_theme = "alabaster"
html_title = "lxactors"
html_static_path: list[str] = []

# The docstrings say what a name does; the signature shows its types.
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_preserve_defaults = True
# Without the ray extra, lxactors.cluster is read with Ray mocked.
if importlib.util.find_spec("ray") is None:
    autodoc_mock_imports = ["ray"]

myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

nitpicky = True
# Names of other projects and of the standard library (no intersphinx: no
# network in CI), and private names that show in signatures.
nitpick_ignore_regex = [
    (r"py:.*", r"(pykka|ray|asyncio|collections|collections\.abc|concurrent|queue|socket"
               r"|socketserver|argparse|threading|types|typing|os|pathlib|selectors)\..*"),
    (r"py:.*", r"(Path|PathLike|Callable|Iterator|Iterable|Sequence|Mapping|Any|TracebackType"
               r"|AsyncIterator|Generator|ActorRef|Future|ParamSpec|TypeVar|P|R|T|Subparsers)"),
    (r"py:.*", r"(lxactors\.)?_.*"),
    (r"py:.*", r".*\._[A-Za-z].*"),
]
