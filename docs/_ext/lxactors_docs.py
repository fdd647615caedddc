"""Sphinx extension for lxactors' docs: every public name documented; the CLI page.

* At the end of reading, every name in the public modules' ``__all__`` and
  every public member of :class:`lxactors.liblxc.Container` must have a
  docstring of its own (a ``#:`` comment for data) and be rendered somewhere
  in the reference; each one that is not is a warning, which ``-W`` makes a
  failed build.  A new public name without documentation cannot land.
* ``#:`` comments of data re-exported from a private module (``lxactors.Message``,
  the shims' constants) are found in the module that defines them.
* Markdown files of the repository included as pages (the README, the
  examples' READMEs) keep their GitHub links: on ``include-read`` a link to
  another included file becomes a link to its page, a link to any other file
  of the repository a download, and ``#anchor`` a link into its page.
* References to ``lxactors.tcpvm.X`` / ``lxactors.imc.X`` (the import paths)
  resolve to ``lxactors.apps.*.X`` where the code is documented.
* ``.. lxactors-cli::`` renders ``lxactors.apps.cli.parser()``'s help, the
  command's and each subcommand's, as the command prints it.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import os
import posixpath
import re
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

log = logging.getLogger(__name__)

#: The public modules whose ``__all__`` is the API.  For the shims, a name
#: may be rendered under the module it comes from (``ALIASES``).
PUBLIC = ("lxactors", "lxactors.liblxc", "lxactors.aio", "lxactors.cluster",
          "lxactors.tcpvm", "lxactors.imc")
ALIASES = {"lxactors.tcpvm": "lxactors.apps.tcpvm", "lxactors.imc": "lxactors.apps.imc"}
#: The class whose every public member is checked (1:1 with struct lxc_container).
MEMBERS_OF = "lxactors.liblxc.Container"


#: Repository Markdown files included as pages: path -> docname.
INCLUDED = {"README.md": "readme", "examples/tcpvm/README.md": "examples-tcpvm",
            "examples/imc/README.md": "examples-imc"}
_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")


def _attr_docs(modname: str) -> dict[tuple[str, str], list[str]]:
    try:
        return ModuleAnalyzer.for_module(modname).find_attr_docs()
    except Exception:  # a compiled or missing module: no comments to read
        return {}


def data_doc(module: ModuleType, name: str) -> str:
    """The ``#:`` comment of *module*'s *name*, or of the module that defines it."""
    value = getattr(module, name)
    candidates = [module.__name__]
    candidates += sorted(m for m, mod in list(sys.modules.items())
                         if m.startswith("lxactors") and mod is not None and m != module.__name__
                         and getattr(mod, name, None) is value)
    for modname in candidates:
        lines = _attr_docs(modname).get(("", name))
        if lines and "".join(lines).strip():
            return "\n".join(lines)
    return ""


def own_doc(obj: Any, owner: type | None = None, name: str = "") -> str:
    """*obj*'s own docstring: not inherited, not dataclasses' generated signature."""
    if owner is not None:
        raw = owner.__dict__.get(name)
        if isinstance(raw, (staticmethod, classmethod)):
            raw = raw.__func__
        obj = raw
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__") or ""
        if dataclasses.is_dataclass(obj) and doc.startswith(obj.__name__ + "("):
            return ""
        return str(doc)
    return str(getattr(obj, "__doc__", None) or "")


def _is_data(obj: Any) -> bool:
    return not (inspect.isclass(obj) or inspect.isroutine(obj) or inspect.ismodule(obj)
                or isinstance(obj, property))


def public_names() -> Iterator[tuple[str, list[str], str]]:
    """(full name, names it may be rendered under, its docstring) for every public name."""
    for modname in PUBLIC:
        module = importlib.import_module(modname)
        alias = ALIASES.get(modname)
        for name in module.__all__:
            obj = getattr(module, name)
            doc = data_doc(module, name) if _is_data(obj) else own_doc(obj)
            where = [f"{modname}.{name}"] + ([f"{alias}.{name}"] if alias else [])
            yield f"{modname}.{name}", where, doc
    modname, _, clsname = MEMBERS_OF.rpartition(".")
    cls = getattr(importlib.import_module(modname), clsname)
    attr_docs = _attr_docs(modname)
    for name, raw in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(raw, (staticmethod, classmethod, property)) or inspect.isroutine(raw):
            doc = own_doc(None, cls, name)
        else:
            doc = "\n".join(attr_docs.get((clsname, name), []))
        yield f"{MEMBERS_OF}.{name}", [f"{MEMBERS_OF}.{name}"], doc


def check_documented(app: Sphinx, env: BuildEnvironment) -> None:
    """Warn for each public name without a docstring or missing from the reference."""
    rendered = set(env.get_domain("py").objects)  # type: ignore[attr-defined]
    for full, where, doc in public_names():
        if not doc.strip():
            log.warning("%s has no docstring (write one, or a #: comment for data)", full,
                        type="lxactors", subtype="undocumented")
        if not any(w in rendered for w in where):
            log.warning("%s is public but in no page of the reference (add it to docs/)", full,
                        type="lxactors", subtype="unrendered")


def fill_data_doc(app: Sphinx, what: str, name: str, obj: Any, options: Any,
                  lines: list[str]) -> None:
    """Give re-exported data the ``#:`` comment of the module that defines it."""
    if what not in ("data", "attribute"):
        return
    modname, _, attr = name.rpartition(".")
    module = sys.modules.get(modname)
    if module is None or not hasattr(module, attr):
        return
    doc = data_doc(module, attr)
    if doc and "\n".join(lines).strip() != doc.strip():
        lines[:] = doc.splitlines() + [""]


def _rewrite(repo: str, path: str, page: str, parent: str, text: str) -> str:
    """*text* of repository file *path* (shown in *parent*) with its links made to work here."""
    here = posixpath.dirname(path)

    def link(match: re.Match[str]) -> str:
        label, target = match.group(1), match.group(2)
        if "://" in target or target.startswith("mailto:"):
            return match.group(0)
        file, _, anchor = target.partition("#")
        hash_ = f"#{anchor}" if anchor else ""
        if not file:
            return f"[{label}](/{page}.md{hash_})" if parent != page else match.group(0)
        where = posixpath.normpath(posixpath.join(here, file))
        if where in INCLUDED:
            return f"[{label}](/{INCLUDED[where]}.md{hash_})"
        if os.path.isdir(os.path.join(repo, where)):
            return label  # a folder: no page, no download; its name stays
        if where.startswith("docs/") and where.endswith(".md"):
            return f"[{label}](/{where[len('docs/'):]}{hash_})"
        return f"[{label}]({posixpath.relpath(where, 'docs')}{hash_})"  # a download

    return _LINK.sub(link, text)


def rewrite_included(app: Sphinx, relative_path: Any, parent_docname: str,
                     content: list[str]) -> None:
    """Point an included file's repository links at pages, downloads or anchors."""
    srcdir = str(app.srcdir)
    repo = os.path.dirname(srcdir)
    path = os.path.relpath(os.path.normpath(os.path.join(srcdir, str(relative_path))), repo)
    if path in INCLUDED:
        content[0] = _rewrite(repo, path, INCLUDED[path], parent_docname, content[0])


def rewrite_guide(app: Sphinx, docname: str, content: list[str]) -> None:
    """The same for a Markdown guide of docs/ (a page itself): links out of docs/."""
    srcdir = str(app.srcdir)
    if "/" in docname or not os.path.exists(os.path.join(srcdir, docname + ".md")):
        return
    repo = os.path.dirname(srcdir)
    content[0] = _rewrite(repo, f"docs/{docname}.md", docname, docname, content[0])


def resolve_alias(app: Sphinx, env: BuildEnvironment, node: addnodes.pending_xref,
                  contnode: nodes.TextElement) -> nodes.Node | None:
    """``lxactors.tcpvm.X`` and ``lxactors.imc.X`` resolve where the code is documented."""
    if node.get("refdomain") != "py":
        return None
    target = str(node.get("reftarget", ""))
    for public, real in ALIASES.items():
        if target.startswith(public + "."):
            node["reftarget"] = real + target[len(public):]
            domain = env.get_domain("py")
            return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"],
                                       node["reftarget"], node, contnode)
    return None


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


class CliDirective(SphinxDirective):
    """``.. lxactors-cli::``: the help of the ``lxactors`` command and of each subcommand."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from lxactors.apps.cli import parser

        old = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "88"  # argparse wraps to the terminal: fix the width
        try:
            top = parser()
            out: list[nodes.Node] = [nodes.literal_block(text=top.format_help().rstrip())]
            for name, sub in _subcommands(top).items():
                section = nodes.section(ids=[nodes.make_id(f"lxactors-{name}")])
                section += nodes.title(text=f"lxactors {name}")
                section += nodes.literal_block(text=sub.format_help().rstrip())
                out.append(section)
        finally:
            if old is None:
                del os.environ["COLUMNS"]
            else:
                os.environ["COLUMNS"] = old
        return out


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("env-check-consistency", check_documented)
    app.connect("autodoc-process-docstring", fill_data_doc)
    app.connect("include-read", rewrite_included)
    app.connect("source-read", rewrite_guide)
    app.connect("missing-reference", resolve_alias)
    app.add_directive("lxactors-cli", CliDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
