"""Sphinx configuration for the nodepool operator documentation.

Built offline (no intersphinx, no remote themes) so that the docs test can
run anywhere the test extra is installed:

    python -m sphinx -W -b html doc/source doc/build/html
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)

from nodepool.version import __version__  # noqa: E402

project = "nodepool"
author = "the nodepool developers"
copyright = "the nodepool developers, Apache License 2.0"  # noqa: A001
version = release = __version__

extensions: list[str] = []
master_doc = "index"
exclude_patterns: list[str] = []
# Literal blocks hold YAML, shell sessions and ASCII diagrams; never guess a
# lexer for them (a failed guess is a warning, and warnings are errors).
highlight_language = "none"
nitpicky = True

html_theme = "alabaster"
html_title = f"nodepool {release}"
html_static_path: list[str] = []
html_theme_options = {
    "description": "A node launcher for Zuul",
    "page_width": "1100px",
    "sidebar_width": "240px",
}
