"""Where the page's files are, however the package was installed.

The repository keeps the page in ``static/`` beside ``app/`` and the question in ``docs/question.md``. A
wheel (``pip install .``) ships the same files as package data in ``app/static/`` and ``app/docs/``
(setup.py maps the one onto the other); a checkout, an editable install and the Docker image (which
copies ``app/``, ``static/`` and ``docs/`` side by side) use the repository's folders themselves.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _locate(folder: str, probe: str) -> Path:
    installed = Path(str(files("app") / folder))
    if (installed / probe).is_file():
        return installed
    return Path(__file__).resolve().parent.parent / folder


STATIC: Path = _locate("static", "index.html")
QUESTION: Path = _locate("docs", "question.md") / "question.md"
