"""Learned sensory transduction: GRU transducers fitted to AFD (temperature) and BAG (O2) calcium imaging.

See ``docs/sensory.md``: records and loaders (``records``, ``loaders``, ``capture``), the flax GRU model
(``transducer``), the continuous-time component and its coupling to c302 (``component``, ``circuit``),
training (``training``) and evaluation (``evaluate``; ``python -m owjax.sensory evaluate``).
"""
