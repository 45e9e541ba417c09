"""Sphinx configuration for the papy-imap documentation.

Built by ``make docs`` (and by ``make test``) with warnings as errors. No
extension here needs the network: intersphinx is deliberately not used.
"""

from __future__ import annotations

import configparser
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
# Document the source tree itself, installed or not.
sys.path.insert(0, ROOT)

_setup = configparser.ConfigParser()
_setup.read(os.path.join(ROOT, "setup.cfg"))

project = "papy-imap"
author = "the papy-imap authors"
copyright = "the papy-imap authors"  # noqa: A001
release = _setup.get("metadata", "version", fallback="0.0.0")
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

# Docstrings are written in Google style.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {
    "show-inheritance": True,
}

exclude_patterns = ["_build"]
templates_path: list[str] = []

html_theme = "alabaster"
html_static_path: list[str] = []
html_theme_options = {
    "description": "lazy, parallel, multi-task imap",
    "fixed_sidebar": True,
}
