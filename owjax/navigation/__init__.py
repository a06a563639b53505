"""Closed-loop navigation: arena → stimulus at the head → AFD transducer → c302 head circuit → body.

* :mod:`owjax.navigation.arena` — temperature, O2 and NaCl fields of a plate (pure functions, cm, °C);
* :mod:`owjax.navigation.body` — the navigation-level body (centroid, heading, head sweep; cm, s);
* :mod:`owjax.navigation.circuit` — the graded reduction of c302's head circuit (AFD, AIY, AIZ, RIA, …);
* :mod:`owjax.navigation.loop` — the couplings and the loop as one :class:`~owjax.core.component.Composite`,
  solved for a batch of worms by :func:`owjax.core.solve.solve_ys` under ``vmap``;
* :mod:`owjax.navigation.metrics`, :mod:`owjax.navigation.plots` — thermotaxis / chemotaxis indices, figures;
* :mod:`owjax.navigation.run` — ``python -m owjax.simulate +scenario=thermotaxis | klinotaxis``.

See docs/navigation.md and experiments/thermotaxis/.
"""
