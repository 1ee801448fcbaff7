"""Sphinx configuration of restorekit's documentation site.

Build (warnings are errors):  python -m sphinx -W -b html docs docs/_build/html
The API reference is generated from the docstrings (docs/generated/, written here); the gallery
runs every script in ``demos/`` that has a ``--quick`` flag at that size and shows the figures
it writes. RESTOREKIT_DOCS_GALLERY=0 builds without running the demos (about a minute instead
of several; no figures).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import pkgutil
import re
import shutil
import sys
import tempfile
from pathlib import Path

import docutils.core

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's restorekit and demos, installed or not

project = "restorekit"
author = "the restorekit developers"
copyright = "2026, the restorekit developers"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
]
html_theme = "furo"
html_title = "restorekit"
exclude_patterns = ["_build", "figures/README.md"]
autosummary_generate = False  # the module pages are written below; autosummary only draws tables
autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
suppress_warnings = [
    "ref.python",  # the same class is reachable from a module and its package
    "config.cache",  # sphinx_gallery_conf holds functions: the environment is rebuilt every time
]

# -------------------------------------------------------------------------------- API reference
# Every public object is documented once, on the page of the module that defines it; a package
# page lists its public names (``__all__``) with links to those pages. Documenting a re-export
# again would give two descriptions of one object (and ``operators.blur`` is both a function
# and a module).


def _public_names(module) -> list[str]:
    names = getattr(module, "__all__", None)
    return list(names) if names is not None else [n for n in vars(module) if not n.startswith("_")]


def _assigned_names(module) -> set[str]:
    """Names bound by a top-level assignment in the module's own source."""
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError):
        return set()
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def _home(module, name: str) -> str | None:
    """Full name under which ``module.name`` is documented: its defining module's page."""
    obj = getattr(module, name, None)
    if inspect.ismodule(obj):
        return None
    if inspect.isclass(obj) or inspect.isfunction(obj):
        return f"{obj.__module__}.{obj.__qualname__}"
    for modname, mod in _MODULES.items():
        if getattr(mod, name, None) is obj and name in _assigned_names(mod):
            return f"{modname}.{name}"
    return None


def _own_members(modname: str, module) -> list[str]:
    """Public names the module itself defines (not those it imports)."""
    own = []
    for name in _public_names(module):
        obj = getattr(module, name, None)
        if inspect.ismodule(obj):
            continue
        if inspect.isclass(obj) or inspect.isfunction(obj):
            if obj.__module__ == modname:
                own.append(name)
        elif name in _assigned_names(module):
            own.append(name)
    return own


import restorekit  # noqa: E402

_MODULES = {"restorekit": restorekit}
_MODULES |= {
    info.name: importlib.import_module(info.name)
    for info in pkgutil.walk_packages(restorekit.__path__, "restorekit.")
    if not any(part.startswith("_") for part in info.name.split("."))
}


def _module_page(name: str, module) -> str:
    """reST of one module's page: its docstring, the members it defines, and for a package the
    table of its public names (linked to their home pages) and its submodules' pages."""
    own = _own_members(name, module)
    from sphinx.pycode import ModuleAnalyzer

    commented = {attr for _, attr in ModuleAnalyzer.for_module(name).find_attr_docs()}
    # autodoc leaves data without a ``#:`` comment out of :members:; those get an autodata
    bare = [n for n in own if not callable(getattr(module, n)) and n not in commented]
    listed = [n for n in own if n not in bare]
    lines = [name, "=" * len(name), "", f".. automodule:: {name}"]
    lines += [f"   :members: {', '.join(listed)}", "   :undoc-members:"] if listed else ["   :no-members:"]
    for data in bare:
        lines += ["", f".. autodata:: {name}.{data}"]
    public = (
        [h for n in _public_names(module) if (h := _home(module, n))] if hasattr(module, "__path__") else []
    )
    if public:
        lines += [
            "",
            ".. rubric:: Public names (each documented on its module's page)",
            "",
            ".. currentmodule:: None",
            "",
            ".. autosummary::",
            "",
        ] + [f"   ~{h}" for h in public]
    children = [m for m in _MODULES if m.rpartition(".")[0] == name]
    if children:
        lines += ["", ".. rubric:: Modules", "", ".. toctree::", "   :maxdepth: 1", ""] + [
            f"   {m}" for m in children
        ]
    return "\n".join(lines) + "\n"


def _write_api_pages() -> None:
    """docs/generated/<module>.rst for every public module (rewritten only when changed)."""
    folder = Path(__file__).parent / "generated"
    folder.mkdir(exist_ok=True)
    for name, module in _MODULES.items():
        page, text = folder / f"{name}.rst", _module_page(name, module)
        if not page.exists() or page.read_text(encoding="utf-8") != text:
            page.write_text(text, encoding="utf-8")


_write_api_pages()

# --------------------------------------------------------------------------------- docstrings
# restorekit's docstrings write their maths in Unicode with aligned update rules. Those that are
# valid reStructuredText are rendered as such; the others are shown verbatim (monospace, the
# maths exactly as written), so no docstring can break the build or lose its alignment.


def _is_clean_rst(text: str) -> bool:
    """Whether docutils parses ``text`` without a warning (system message of level ≥ 2)."""
    settings = {"report_level": 5, "halt_level": 5, "warning_stream": False}
    text = re.sub(r":[a-z]+(:[a-z]+)?:`", "`", text)  # Sphinx roles are unknown to bare docutils
    try:
        tree = docutils.core.publish_doctree(text, settings_overrides=settings)
    except Exception:  # any docutils failure: show the docstring verbatim
        return False
    return not any(
        node.tagname == "problematic" or (node.tagname == "system_message" and int(node.get("level", 0)) >= 2)
        for node in tree.findall()
    )


def _sections_to_rst(lines: list[str]) -> list[str]:
    """Section headings (``Parameters`` over a dash underline) become rubrics, and under
    ``Parameters`` each ``name : description`` line a definition-list entry (restorekit writes
    the description where numpydoc puts the type, so napoleon would mislabel it)."""
    out, params, i = [], False, 0
    while i < len(lines):
        line = lines[i]
        under = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and re.fullmatch(r"-{3,}", under.strip()) and len(under.strip()) == len(line.strip()):
            params = line.strip() == "Parameters"
            out += [f".. rubric:: {line.strip()}", ""]
            i += 2
            continue
        entry = re.fullmatch(r"(\S[^:]*?) : (.*)", line) if params else None
        if entry:
            out += [f"``{entry[1]}``", f"    {entry[2]}"]
        else:
            params = params and (
                bool(line.strip()) or (i + 1 < len(lines) and bool(re.match(r"\S[^:]*? : ", lines[i + 1])))
            )
            out.append(line)
        i += 1
    return out


def _verbatim_if_not_rst(app, what, name, obj, options, lines):
    text = "\n".join(lines)
    if not text.strip():
        return
    converted = _sections_to_rst(lines)
    if _is_clean_rst("\n".join(converted)):
        lines[:] = converted
        return
    lines[:] = ["::", ""] + ["    " + line for line in text.splitlines()] + [""]


# ------------------------------------------------------------------------- measured results
# The "choosing" guide shows the measured tables that live in the repository as Markdown (the
# README's held-out sections, benchmarks/defaults_results.md when present): converted here into
# docs/guides/_measured/*.inc at every build, so the site never holds a number of its own.
_MEASURED = Path(__file__).parent / "guides" / "_measured"


def _inline_md(text: str) -> str:
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")
    text = re.sub(r"\\\*\\\*(.+?)\\\*\\\*", r"**\1**", text)
    text = re.sub(r"(?<!`)`([^`]+)`(?!`)", lambda m: "``" + m[1].replace("\\", "") + "``", text)
    text = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r"`\1 <\2>`__", text)
    return re.sub(r"(\w)_(?=\W|$)", r"\1\\_", text)


def _markdown_to_rst(md: str) -> str:
    """The Markdown the repository's result files use (headings, paragraphs, lists, pipe tables,
    inline code, bold, links, images under docs/) as reStructuredText."""
    out, rows = [], []

    def flush_table():
        if rows:
            cells = [r for r in rows if not re.fullmatch(r"\|?[\s:|-]+\|?", r)]
            split = [[c.strip() for c in r.strip().strip("|").split("|")] for r in cells]
            out.extend(["", ".. list-table::", "   :header-rows: 1", ""])
            for row in split:
                for k, cell in enumerate(row):
                    out.append(("   * - " if k == 0 else "     - ") + (_inline_md(cell) or "\\"))
            out.append("")
            rows.clear()

    for line in md.splitlines():
        if line.lstrip().startswith("|"):
            rows.append(line)
            continue
        flush_table()
        heading = re.fullmatch(r"#+\s+(.*)", line)
        image = re.fullmatch(r"!\[([^\]]*)\]\(docs/([^)]+)\)", line.strip())
        if heading:
            out += ["", f".. rubric:: {_inline_md(heading[1])}", ""]
        elif image:
            out += ["", f".. image:: /{image[2]}", f"   :alt: {image[1]}", ""]
        else:
            out.append(_inline_md(line))
    flush_table()
    return "\n".join(out) + "\n"


def _readme_section(title_start: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title_start)}.*?\n(.*?)(?=^## |\Z)", readme, flags=re.S | re.M)
    if match is None:
        raise RuntimeError(
            f"README.md has no section starting with '## {title_start}'; docs/guides/choosing.rst shows it"
        )
    return match[1]


def _write_measured() -> None:
    _MEASURED.mkdir(exist_ok=True)
    defaults = ROOT / "benchmarks" / "defaults_results.md"
    sources = {
        "readme_quality.inc": _readme_section("Shipped priors and honest quality"),
        "readme_benchmarks.inc": _readme_section("Benchmarks"),
        "defaults.inc": defaults.read_text(encoding="utf-8")
        if defaults.exists()
        else "The defaults matrix (``benchmarks/defaults_results.md``) is not in this checkout: "
        "``python benchmarks/defaults.py`` writes it.",
    }
    for name, md in sources.items():
        (_MEASURED / name).write_text(_markdown_to_rst(md), encoding="utf-8")


_write_measured()

# ------------------------------------------------------------------------------------ gallery
# Every script of demos/ with a ``--quick`` flag is an example, run at its quick size; the others
# (and demos/out/, which has no gallery header) are left out. RESTOREKIT_DOCS_GALLERY=0 builds the
# gallery pages without running the demos (no figures), for a fast check of everything else.
_GALLERY_OUT = Path(tempfile.mkdtemp(prefix="restorekit-gallery-"))
_DEMOS = ROOT / "demos"
_QUICK_DEMOS = sorted(p.name for p in _DEMOS.glob("*.py") if "--quick" in p.read_text(encoding="utf-8"))
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _demo_argv(gallery_conf, script_vars):
    """Every demo runs at its quick size and writes into a folder of its own (``--out`` is a
    folder for most demos and a file name for some: both land under that folder)."""
    out = _GALLERY_OUT / Path(script_vars["src_file"]).stem
    out.mkdir(parents=True, exist_ok=True)
    return ["--quick", "--out", str(out / "figures")]


def _written_figures(block, block_vars, gallery_conf):
    """Image scraper: the PNG files the demo wrote (restorekit draws on matplotlib Figures
    without pyplot, which the default scraper does not see)."""
    from sphinx_gallery.scrapers import figure_rst

    out = _GALLERY_OUT / Path(block_vars["src_file"]).stem
    pngs = sorted(f for f in out.glob("**/*") if f.is_file() and f.read_bytes()[:8] == _PNG_MAGIC)
    names = []
    for png, target in zip(pngs, block_vars["image_path_iterator"]):
        shutil.copyfile(png, target)
        names.append(target)
    for png in pngs:
        png.unlink()
    return figure_rst(names, gallery_conf["src_dir"])


sphinx_gallery_conf = {
    "examples_dirs": str(_DEMOS),
    "gallery_dirs": "gallery",
    "filename_pattern": "|".join(re.escape(os.sep + name) + "$" for name in _QUICK_DEMOS),
    "ignore_pattern": "|".join(
        [r"__init__\.py$"]
        + [re.escape(os.sep + p.name) + "$" for p in _DEMOS.glob("*.py") if p.name not in _QUICK_DEMOS]
    ),
    "reset_argv": _demo_argv,
    "image_scrapers": (_written_figures,),
    "download_all_examples": False,
    "remove_config_comments": True,
    "plot_gallery": os.environ.get("RESTOREKIT_DOCS_GALLERY", "1") != "0",
    "abort_on_example_error": True,
}


def setup(app):
    app.connect("autodoc-process-docstring", _verbatim_if_not_rst)
