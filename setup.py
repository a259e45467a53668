"""Only what pyproject.toml cannot say: the page in static/ and docs/question.md ship inside the package,
as app/static and app/docs.

Everything else (metadata, dependencies, package data globs) is in pyproject.toml; app/assets.py finds
the page in either place.
"""
from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["app", "app.*"]), "app.static", "app.docs"],
      package_dir={"app.static": "static", "app.docs": "docs"})
