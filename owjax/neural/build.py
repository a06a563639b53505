"""From configuration to model: which network, which stimuli, which parameter file.

This is the one place that turns the ``model`` / ``network`` / ``stimulus`` config groups (or the
same keys in Python) into a :class:`~owjax.neural.spec.NetworkSpec` and a :class:`~owjax.neural.network.NetworkModel`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


from owjax.neural.c302_data import CONFIGS, PARAMETER_SETS, load_c302_network
from owjax.neural.neuroml import read_network
from owjax.neural.network import NetworkModel
from owjax.neural.spec import NetworkSpec, PulseInput, unknown_name_message

__all__ = ["build_spec", "build_model", "pulses_from_config"]

_NETWORK_ALIASES = {c.lower(): c for c in CONFIGS}


def pulses_from_config(pulses: Sequence[Mapping]) -> list[PulseInput]:
    """``[{cell, delay_ms, duration_ms, amplitude_pA}, …]`` → :class:`PulseInput` list (validated)."""
    out = []
    need = {"cell", "delay_ms", "duration_ms", "amplitude_pA"}
    for i, p in enumerate(pulses):
        p = dict(p)
        missing, extra = need - set(p), set(p) - need - {"id"}
        if missing or extra:
            raise ValueError(
                f"stimulus pulse #{i} {p}: missing keys {sorted(missing)}, unknown keys {sorted(extra)}; "
                f"each pulse needs exactly {sorted(need)}"
            )
        for k in ("delay_ms", "duration_ms", "amplitude_pA"):
            v = float(p[k])
            if v != v or v in (float("inf"), float("-inf")):
                raise ValueError(f"stimulus pulse #{i}: {k}={p[k]!r} is not finite")
        if float(p["duration_ms"]) < 0 or float(p["delay_ms"]) < 0:
            raise ValueError(f"stimulus pulse #{i}: delay_ms and duration_ms must be >= 0, got {p}")
        out.append(
            PulseInput(str(p["cell"]), float(p["delay_ms"]), float(p["duration_ms"]), float(p["amplitude_pA"]),
                       id=str(p.get("id", f"pulse{i}")))
        )
    return out


def build_spec(
    parameter_set: str = "C1",
    network: str | None = "Full",
    file: str | Path | None = None,
    cells: Sequence[str] | None = None,
    stimulus_mode: str = "c302",
    pulses: Sequence[Mapping] = (),
) -> NetworkSpec:
    """The network to simulate.

    Arguments:
        parameter_set: c302 parameter set (``C0``, ``C1``, ``C2``); ignored when ``file`` is given
            (a NeuroML file carries its own parameters).
        network: c302 config (``Full``, ``Muscles``, ``IClamp``, ``Syns``, ``Oscillator``, ``Social``;
            case-insensitive), or ``None`` / ``"neuroml"`` with ``file``.
        file: a c302-generated ``*.net.nml`` to load instead of a captured config.
        cells: restrict to these cells (c302's ``cells=`` subset: connections among them only).
        stimulus_mode: ``c302`` (keep the config's pulse inputs), ``none`` (remove them),
            ``replace`` (use only ``pulses``) or ``add`` (config inputs plus ``pulses``).
        pulses: pulse definitions ``{cell, delay_ms, duration_ms, amplitude_pA}`` (pA, ms).

    Returns:
        The :class:`~owjax.neural.spec.NetworkSpec`.
    """
    if file is not None and str(file) not in ("", "None"):
        if network not in (None, "neuroml", "NeuroML"):
            raise ValueError(f"give either network={network!r} or a NeuroML file, not both")
        spec = read_network(file)
    else:
        if network is None or str(network).lower() == "neuroml":
            raise ValueError("network=neuroml needs network.file=PATH.net.nml")
        key = str(network).lower()
        if key not in _NETWORK_ALIASES:
            raise ValueError(unknown_name_message("network", str(network), CONFIGS + ("neuroml",)))
        if parameter_set not in PARAMETER_SETS:
            raise ValueError(unknown_name_message("parameter set", parameter_set, PARAMETER_SETS))
        spec = load_c302_network(parameter_set, _NETWORK_ALIASES[key])
    if cells:
        spec = spec.subset(list(cells))
    modes = ("c302", "none", "replace", "add")
    if stimulus_mode not in modes:
        raise ValueError(unknown_name_message("stimulus mode", stimulus_mode, modes))
    extra = pulses_from_config(pulses)
    if stimulus_mode == "none":
        spec = spec.with_inputs([])
    elif stimulus_mode == "replace":
        spec = spec.with_inputs(extra)
    elif stimulus_mode == "add":
        spec = spec.with_inputs(list(spec.inputs) + extra)
    elif extra:
        raise ValueError("stimulus.mode=c302 keeps c302's inputs; use mode=add or mode=replace for pulses")
    return spec


def build_model(spec: NetworkSpec, dtype: str = "float64", params: str | Path | None = None) -> NetworkModel:
    """Arrays from a spec, in ``dtype`` (``float64`` needs JAX's 64-bit mode, :mod:`owjax.core.precision`), plus fitted parameters.

    ``params`` is a parameter file written by ``owjax.fit`` (loaded with :func:`owjax.fitting.param_files.load_param_file`
    when that module is available).
    """
    from owjax.core.precision import require_dtype

    model = NetworkModel.from_spec(spec, require_dtype(dtype, "build_model"))
    if params not in (None, "", "None"):
        from owjax.fitting.param_files import apply_param_file  # written by the fitting framework

        model = apply_param_file(model, params)
    return model
