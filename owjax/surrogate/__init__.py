"""The body surrogate (DD017, component 2): an equinox Fourier neural operator from muscle activation
to body trajectory, trained on owjax's own body and used with an automatic fallback to the physics.

* :mod:`owjax.surrogate.families` — the activation families (nominal BBC loop, perturbed, travelling
  waves with turns, single segment, smooth random; and the out-of-distribution families).
* :mod:`owjax.surrogate.data` — batched, sharded, resumable generation of HDF5 training data
  (``python -m owjax.surrogate.generate``) and its loader.
* :mod:`owjax.surrogate.fno` — the 1-D (time) Fourier neural operator.
* :mod:`owjax.surrogate.training` — the fitting task (``python -m owjax.fit +experiment=body_surrogate``).
* :mod:`owjax.surrogate.component` — :class:`~owjax.surrogate.component.BodySurrogate`: prediction,
  error estimate and fallback to the physics (``backend="surrogate" | "physics" | "auto"``).

Units: time s, lengths mm (body length 1 mm), angles rad; docs/surrogate.md.
"""
