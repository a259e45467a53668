"""The engine and the service speak no HTTP: no web framework imports, no HTTP status on a domain error."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import app.service.errors as errors

APP = Path(__file__).resolve().parents[2] / "app"
WEB = ("fastapi", "starlette")


def web_imports(path: Path) -> list[str]:
    """"file:line module" of every absolute import of a web framework in path."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
        found += [f"{path.name}:{node.lineno} {n}" for n in names if n.split(".")[0] in WEB]
    return found


@pytest.mark.parametrize("layer", ["engine", "service"])
def test_the_layer_imports_no_web_framework(layer):
    files = sorted((APP / layer).rglob("*.py"))
    assert files
    assert [hit for f in files for hit in web_imports(f)] == []


def imports_of(path: Path) -> list[str]:
    """Every absolute module path imported in path."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.append(node.module or "")
    return found


def test_the_engine_imports_nothing_of_the_app_above_it():
    """The engine is NumPy only: no settings, service, store or web module; they start from its defaults."""
    above = [f"{f.name} {m}" for f in sorted((APP / "engine").rglob("*.py")) for m in imports_of(f)
             if m.startswith("app.") and not m.startswith("app.engine")]
    assert above == []


def test_the_check_finds_both_import_forms(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nfrom starlette.requests import Request\nimport fastapi.responses\nfrom . import x\n")
    assert web_imports(probe) == ["probe.py:2 starlette.requests", "probe.py:3 fastapi.responses"]


def domain_errors() -> list[type]:
    return [c for _, c in inspect.getmembers(errors, inspect.isclass)
            if issubclass(c, errors.DomainError) and c.__module__ == errors.__name__]


def example(cls: type) -> errors.DomainError:
    """An instance of each domain error class, built with the arguments its constructor names."""
    if cls is errors.OverLimit:
        return cls(errors.Kind.TOO_MANY, "d", 1.0)
    if cls is errors.Unprocessable:
        return cls(("body", "x"), "d")
    if cls is errors.DomainError:
        return cls("d")
    params = [p for p in inspect.signature(cls.__init__).parameters.values()
              if p.name != "self" and p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD]
    return cls(*["d"] * len(params))


HTTP_WORDS = {"status", "status_code", "http_status", "code", "headers"}


@pytest.mark.parametrize("cls", domain_errors(), ids=lambda c: c.__name__)
def test_a_domain_error_carries_no_http_status(cls):
    err = example(cls)
    for name in sorted(set(vars(cls)) | set(vars(err))):
        value = getattr(err, name)
        assert name not in HTTP_WORDS, f"{cls.__name__}.{name}"
        # an int in 100..599 on the class or instance is a status under another name
        assert not (isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599), \
            f"{cls.__name__}.{name} = {value}"
    if cls is not errors.DomainError:
        assert isinstance(err.kind, errors.Kind)


def test_every_kind_is_raised_by_some_class():
    kinds = {example(c).kind for c in domain_errors() if c is not errors.DomainError}
    kinds |= set(errors.OverLimit.KINDS)
    assert kinds == set(errors.Kind)


def test_an_over_limit_takes_only_a_limit_kind():
    with pytest.raises(ValueError):
        errors.OverLimit(errors.Kind.CONFLICT, "d")
    with pytest.raises(ValueError):
        errors.OverLimit(429, "d")
