"""owjax: the c302 C. elegans network as a differentiable JAX simulator.

Data flows connectome → model spec → RHS modules → solve → traces → fit:

* :mod:`owjax.neural.connectome` — connectome data (cect), c302's polarity rules.
* :mod:`owjax.neural.c302_data`, :mod:`owjax.neural.neuroml`, :mod:`owjax.neural.spec` — c302's networks and parameters.
* :mod:`owjax.neural.channels`, :mod:`owjax.neural.synapses`, :mod:`owjax.neural.network` — the equations, as equinox modules.
* :mod:`owjax.core.solve` — diffrax solver presets; :mod:`owjax.traces` — the HDF5 traces file.
* :mod:`owjax.simulate` — the ``python -m owjax.simulate`` Hydra app.
"""

__version__ = "0.1.0"
