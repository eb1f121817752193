"""Sphinx configuration of fastlr's documentation (build: see the README's "Documentation" section).

Everything that shows a number or a curve is computed while the docs build: the gallery and the
learning-rate guide are sphinx-gallery scripts run against the installed fastlr, the migration
snippets run in the build (``fastlr-run``), and the performance tables are made from the checked-in
benchmark JSON (``docs/_data``). ``fastlr_docs`` also fails the build when a public name of
``fastlr``, ``fastlr.schedules`` or ``fastlr.lr_scheduler`` has no entry in the API pages.
"""

from __future__ import annotations

import sys
from pathlib import Path

import fastlr

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

project = "fastlr"
author = "fastlr developers"
copyright = "fastlr developers"
release = version = fastlr.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "fastlr_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "gallery/README.rst", "guide/README.rst",
                    "auto_gallery/*.py", "auto_guide/*.py", "sg_execution_times.rst"]
root_doc = "index"
nitpicky = False

html_theme = "furo"
html_title = f"fastlr {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
html_last_updated_fmt = None

# autodoc: signatures as written in the code, one entry per public name (the API pages list them).
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = False  # True fails on the drop-ins (their __init__ is torch's, wrapped)
autodoc_default_options: dict[str, object] = {}

# numpydoc: no autosummary tables of members (each page lists its entries itself).
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

# doctest: every ``>>>`` block of the pages and of the docstrings they render runs in
# ``sphinx-build -b doctest``. Docstrings of fastlr.schedules call their functions unqualified, as
# their module's doctests do.
doctest_global_setup = """
import math
import warnings
import numpy as np
import fastlr
from fastlr import schedules as S
from fastlr.schedules import *
try:
    import torch
    from fastlr import lr_scheduler as L
    torch.manual_seed(0)
except ModuleNotFoundError:
    torch = None
"""
doctest_test_doctest_blocks = "default"

# sphinx-gallery: the schedule gallery and the learning-rate guide, both run at build time.
sphinx_gallery_conf = {
    "examples_dirs": ["gallery", "guide"],
    "gallery_dirs": ["auto_gallery", "auto_guide"],
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "abort_on_example_error": True,
    "show_memory": False,
    "min_reported_time": 10**9,
    "write_computation_times": False,
}
