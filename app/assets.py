"""Where the page's files are, however the package was installed.

The repository keeps the page in ``static/`` beside ``app/``. A wheel (``pip install .``) ships the same
files as package data in ``app/static/`` (setup.py maps the one onto the other); a checkout, an editable
install and the Docker image (which copies ``app/`` and ``static/`` side by side) use ``static/`` itself.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _locate() -> Path:
    installed = Path(str(files("app") / "static"))
    if (installed / "index.html").is_file():
        return installed
    return Path(__file__).resolve().parent.parent / "static"


STATIC: Path = _locate()
