"""Suite-wide fixtures.

``make test`` runs every module in one process. Compiled XLA executables (jax's caches, owjax's
``DEFAULT_COMPILED_SOLVES``) otherwise accumulate over ~30 modules; a late large compile (the whole
worm's gradient) then ran out of memory and crashed XLA's compiler once on the 2-core CI machine. So
each module releases what it compiled when it ends (modules do not share compiled functions).
"""

from __future__ import annotations

import gc

import pytest


@pytest.fixture(scope="module", autouse=True)
def _release_compiled_functions_after_each_module():
    yield
    import jax

    from owjax.core.solve import DEFAULT_COMPILED_SOLVES

    DEFAULT_COMPILED_SOLVES.clear()
    jax.clear_caches()
    gc.collect()
