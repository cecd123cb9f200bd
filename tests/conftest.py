"""Test configuration: the ``backend`` fixture and ``pytest --backend NAME``.

Tests are parametrised by backend *names*, so collecting them imports no optional
library; a backend missing here is skipped with the reason its ``available()`` gives.
Tests for one backend alone carry ``@pytest.mark.uses_backend("name")``.
"""
from __future__ import annotations

import json
import os

import pytest

import backends

TESTS = os.path.dirname(os.path.abspath(__file__))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend", action="append", default=[], metavar="NAME",
        help=f"run the backend tests for NAME only (repeatable; known: {', '.join(backends.names())})")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "uses_backend(name): a test of one backend; skipped when it is missing, "
        "deselected when --backend names others")
    config.addinivalue_line(
        "markers", "against_reference: a comparison with the reference backend (numpy), so "
        "run over every other backend")
    unknown = [n for n in config.getoption("backend") if n not in backends.names()]
    if unknown:
        raise pytest.UsageError(
            f"unknown --backend {', '.join(unknown)}; known: {', '.join(backends.names())}")


def selected_backends(config: pytest.Config) -> list[str]:
    return config.getoption("backend") or backends.names()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        names = selected_backends(metafunc.config)
        if metafunc.definition.get_closest_marker("against_reference"):
            names = [n for n in names if n != backends.REFERENCE]
        metafunc.parametrize("backend", names, indirect=True)


def skip_unless_available(name: str) -> backends.Backend:
    backend = backends.create(name)
    ok, why = backend.available()
    if not ok:
        pytest.skip(f"backend {name!r} unavailable: {why}")
    return backend


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> backends.Backend:
    """Each selected backend in turn; skipped with the reason when it cannot run here."""
    return skip_unless_available(request.param)


@pytest.fixture
def register_backend(monkeypatch: pytest.MonkeyPatch):
    """Register a fake backend (a class of ``tests/fakes.py``) for this test only, in this
    process and in the worker processes it starts; ``config`` sets its behaviour."""

    def register(cls_name: str, **config) -> str:
        import fakes

        name = getattr(fakes, cls_name).name
        entries = [e for e in os.environ.get(backends.PLUGINS_VARIABLE, "").split(",") if e]
        monkeypatch.setenv(backends.PLUGINS_VARIABLE,
                           ",".join(entries + [f"{name}=fakes:{cls_name}"]))
        monkeypatch.setenv(fakes.CONFIG_VARIABLE, json.dumps(config))
        path = os.environ.get("PYTHONPATH", "")
        monkeypatch.setenv("PYTHONPATH", TESTS + (os.pathsep + path if path else ""))
        return name

    return register


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    chosen = config.getoption("backend")
    if not chosen:
        return
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker("uses_backend")
        (drop if marker and marker.args[0] not in chosen else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("uses_backend")
    if marker:
        skip_unless_available(marker.args[0])
