"""Reduced-order recurrent models (simple RNN / LSTM / GRU) of owjax input→output maps.

* :mod:`owjax.reduce.waveforms` — input-current waveform families (steps, ramps, pulses, sinusoids, smooth random);
* :mod:`owjax.reduce.drive` — a waveform table as a stateless component coupled into a network's ``i_ext_pA``;
* :mod:`owjax.reduce.data` — the generator: a c302 network driven by waveforms, V of chosen cells recorded;
* :mod:`owjax.reduce.dataset` — column-file / HDF5 datasets, splits by file, normalisation;
* :mod:`owjax.reduce.models` — flax recurrent cell + dense read-out behind pure functions;
* :mod:`owjax.reduce.training` — many runs of one configuration in one vmapped training; the fitting task;
* ``python -m owjax.reduce {generate, train}`` — the command line.

See docs/reduce.md and experiments/reduced_order/.
"""
