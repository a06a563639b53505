"""Shared fixtures of the owjax-vs-NEURON equivalence tests.

Every test here carries the ``reference`` marker. Tests that run NEURON / jNML for real skip
cleanly when ``neuron``, ``c302`` or ``pyneuroml`` cannot be imported or Java is missing; the tests
against the checked-in converged traces (``data/``) only need owjax.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reference)


def reference_stack_missing() -> str | None:
    """Why NEURON/jNML cannot run here, or None."""
    for mod in ("neuron", "c302", "pyneuroml"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not importable (pip install -e '.[reference]')"
    if shutil.which("java") is None:
        return "java is not on PATH (jNeuroML needs Java)"
    return None


@pytest.fixture
def needs_reference_stack():
    why = reference_stack_missing()
    if why:
        pytest.skip(why)
