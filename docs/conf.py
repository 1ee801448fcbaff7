"""Sphinx configuration of restorekit's documentation site.

Build (warnings are errors):  python -m sphinx -W -b html docs docs/_build/html
The API reference is generated from the docstrings; the gallery runs every script in
``demos/`` at its quick size (``--quick``) and shows the figure it writes.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import docutils.core

ROOT = Path(__file__).resolve().parents[1]

project = "restorekit"
author = "the restorekit developers"
copyright = "2026, the restorekit developers"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
]
html_theme = "furo"
html_title = "restorekit"
exclude_patterns = ["_build", "figures/README.md"]
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
suppress_warnings = ["ref.python"]  # the same class is reachable from a module and its package

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
    return not any(node.tagname == "system_message" and int(node.get("level", 0)) >= 2
                   for node in tree.traverse())


def _verbatim_if_not_rst(app, what, name, obj, options, lines):
    text = "\n".join(lines)
    if not text.strip() or _is_clean_rst(text):
        return
    lines[:] = ["::", ""] + ["    " + line for line in text.splitlines()] + [""]


# ------------------------------------------------------------------------------------ gallery
_GALLERY_OUT = Path(tempfile.mkdtemp(prefix="restorekit-gallery-"))


def _demo_argv(gallery_conf, script_vars):
    """Every demo runs at its quick size and writes its figure into a folder of its own."""
    out = _GALLERY_OUT / Path(script_vars["src_file"]).stem
    return ["--quick", "--out", str(out)]


def _written_figures(block, block_vars, gallery_conf):
    """Image scraper: the PNG files the demo wrote (restorekit draws on matplotlib Figures
    without pyplot, which the default scraper does not see)."""
    from sphinx_gallery.scrapers import figure_rst

    out = _GALLERY_OUT / Path(block_vars["src_file"]).stem
    names = []
    for png, target in zip(sorted(out.glob("**/*.png")), block_vars["image_path_iterator"]):
        shutil.copyfile(png, target)
        names.append(target)
    if names:
        shutil.rmtree(out)
    return figure_rst(names, gallery_conf["src_dir"])


sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "demos"),
    "gallery_dirs": "gallery",
    "filename_pattern": r".*\.py$",
    "ignore_pattern": r"__init__\.py$",
    "reset_argv": _demo_argv,
    "image_scrapers": (_written_figures,),
    "download_all_examples": False,
    "remove_config_comments": True,
}


def setup(app):
    app.connect("autodoc-process-docstring", _verbatim_if_not_rst)
