"""Suite-wide fixtures.

``make test`` runs the modules in one pytest-xdist worker per core, each module whole in one worker
(``--dist loadfile``), so a worker runs many modules in turn. Compiled XLA executables (jax's caches, owjax's
``DEFAULT_COMPILED_SOLVES``) otherwise accumulate over ~30 modules. A late large compile (the whole
worm's gradient) once crashed XLA's compiler with a segmentation fault in the full suite, though it
passes alone and after its neighbouring modules; accumulated memory is the suspected cause, not a
proven one. Each module therefore releases what it compiled when it ends (modules do not share
compiled functions).
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
