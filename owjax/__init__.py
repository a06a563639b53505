"""owjax: the c302 C. elegans network as a differentiable JAX simulator.

Data flows connectome → model spec → RHS modules → solve → traces → fit:

* :mod:`owjax.connectome` — connectome data (cect), c302's polarity rules.
* :mod:`owjax.c302_data`, :mod:`owjax.neuroml`, :mod:`owjax.spec` — c302's networks and parameters.
* :mod:`owjax.channels`, :mod:`owjax.synapses`, :mod:`owjax.network` — the equations, as equinox modules.
* :mod:`owjax.solve` — diffrax solver presets; :mod:`owjax.traces` — the HDF5 traces file.
* :mod:`owjax.simulate` — the ``python -m owjax.simulate`` Hydra app.
"""

__version__ = "0.1.0"
