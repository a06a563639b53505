"""``python -m owjax.sensory.capture``: rebuild the compact sensory dataset shipped in ``owjax/data/sensory``.

Reads the raw public recordings (default ``$OWJAX_SENSORY_SOURCE`` or ``<repo>/../shared/data/sensory``:
``afd_bryant2022/*.mat``, ``bag_o2_shift/*.log``) with :mod:`owjax.sensory.loaders` and writes one
``<modality>.npz`` per modality plus ``README.md`` (sources, licences, attribution, units).

Format of ``<modality>.npz`` (written byte-for-byte reproducibly: fixed zip timestamps, sorted
members): ``stimulus`` and ``response`` (n_worms × T_max, float32, NaN-padded), ``n_samples``
(n_worms,), ``t0_s`` and ``dt_s`` (n_worms,), and ``meta`` (a JSON string: worm ids, protocols,
source file names, per-record ``meta``). :func:`read_records` turns it back into records.
Re-running the capture on the same raw files reproduces the shipped files exactly (a test checks it).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from owjax.sensory.loaders import DATA_DIR, load_bryant_mat, load_zimmer_log
from owjax.sensory.records import RecordError, SensoryRecord

__all__ = ["capture", "write_records", "read_records", "default_source", "SOURCES"]

#: raw files per modality, relative to the source directory, in capture order
SOURCES = {
    "afd": ["afd_bryant2022/IK890_pFPT_data.mat", "afd_bryant2022/IK890_pFPT15_data.mat",
            "afd_bryant2022/IK890_NT_data.mat"],
    "bag": ["bag_o2_shift/20120705Pflp178GCaMP5kshift210421W8BAG.log",
            "bag_o2_shift/20121202Pflp178GCaMP5kN2shift_210421W1bag.log",
            "bag_o2_shift/20121202Pflp178GCaMP5kN2shift_210421W2bag.log",
            "bag_o2_shift/20121205Pflp178GCaMP5kN2shift_210421W4bag.log"],
}

README = """# Sensory calcium-imaging data (compact copy for owjax's learned transducers)

Written by `python -m owjax.sensory.capture` from the raw public files; read with
`owjax.sensory.loaders.load_dataset("afd" | "bag")`. Do not edit by hand: re-run the capture (a test
checks that re-capturing reproduces these files byte for byte).

## afd.npz — AFD thermosensory neuron, temperature ramps (50 worms, 1 sample/s)
Data: Bryant, A.S., Ruiz, F., Lee, J.H., Hallem, E.A. (2022). *Neural basis of temperature-driven host
seeking in the human threadworm Strongyloides stercoralis*. Current Biology. Files
`Data/Calcium Imaging/IK890 {pF PT, pF PT15, NT}/*_data.mat` of github.com/HallemLab/Bryant_et_al_2021
(commit e9b828f). **Licence: CC BY 4.0** (https://creativecommons.org/licenses/by/4.0/) — this copy is
reduced (the `complete` window only, float32, trailing zero padding removed, isolated missing temperature
samples linearly interpolated); attribution to the authors is required wherever it or anything derived
from it (the trained AFD transducer) is shipped.
Strain IK890 (AFD::YC3.60), immobilised. Stimulus: temperature, °C. Response: ΔR/R in percent, R0 = the
authors' baseline ratio at the protocol's F0 temperature (unchanged). Protocols: 23 °C hold → 20 °C →
warming at 0.025 °C/s to 34 °C (20 worms); 15 °C hold → 12 °C → 26 °C (16); 23 °C → 13 °C cooling at
0.1 °C/s (14). `meta.analysis_window` = the authors' `subset` window inside the recording.

## bag.npz — BAG O2-sensing neuron, 21 % → 4 % → 21 % O2 (4 worms, 10 Hz)
Data: recordings from the Zimmer lab (2012), distributed as course material in github.com/mpsonntag/snippets
(`courses/2020-LMU-RDM/NIX/excercise/*.log`). **Licence: BSD 3-clause, © 2017 Michael Sonntag**:
redistribution in source or binary form must retain this copyright notice, the list of conditions and
the disclaimer of the BSD 3-clause licence (https://opensource.org/license/bsd-3-clause).
Strain N2; Pflp-17::GCaMP5k; 5 mM tetramisole. Stimulus: O2 in percent, reconstructed from the protocol
(not logged): 4 % from 100 s to 460 s of the log's clock, 21 % otherwise (see owjax/sensory/loaders.py).
Response: ΔF/F (fraction), F = ROI mean − background, F0 = mean F from 30 s to the switch. The ROI of
worm W2 also holds URX.

## afd_transducer.{npz,json}, bag_transducer.{npz,json} — trained transducers (derived works)
GRU transducers (owjax.sensory.transducer) trained on the data above; the AFD model is a work derived
from Bryant et al. 2022 (CC BY 4.0, attribution above), the BAG model from the Zimmer-lab recordings
(BSD 3-clause notice above). Each `.json` names the data, the split (worm ids), the command, the date,
the git commit and the metrics it reproduces. Regenerate with
`python -m owjax.fit +experiment=sensory_afd ship=true` and `python -m owjax.fit +experiment=sensory_bag ship=true`
(not written by the capture).

## afd_calibration.json — the transducer → c302 AFD drive (derived work)
`gain_pA` / `offset_pA` of the drive from the AFD transducer into c302's AFDL/AFDR, fitted by gradient
through the c302 C2 head circuit so that AFD's calcium follows the worm-averaged measured response of
Bryant et al. 2022 (CC BY 4.0, attribution above; protocol `PseudoFictive PT`, 250–450 s), with the
r per worm set, the network, the split's worm ids and the provenance (date, commit, command) inside.
Regenerate with `python -m owjax.fit +experiment=sensory_afd_calibration ship=true`
(owjax/sensory/calibration.py; the recorded commit carries `+dirty` because the experiment's new
defaults — C2, the 250–450 s window, 16 steps — were committed right after the run). Not written by the
capture.
"""


def default_source() -> Path:
    """``$OWJAX_SENSORY_SOURCE`` or ``<repo>/../shared/data/sensory``."""
    env = os.environ.get("OWJAX_SENSORY_SOURCE")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "sensory"


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array(a, order="C"), allow_pickle=False)
    return buf.getvalue()


def write_records(records: list[SensoryRecord], path: str | Path) -> Path:
    """Write records into a reproducible ``.npz`` (same records → same bytes).

    Arguments:
        records: the records (one modality).
        path: output file.

    Returns:
        ``path``.
    """
    if not records:
        raise ValueError("write_records: no records")
    n = len(records)
    tmax = max(r.n_samples for r in records)
    stim = np.full((n, tmax), np.nan, np.float32)
    resp = np.full((n, tmax), np.nan, np.float32)
    for i, r in enumerate(records):
        stim[i, : r.n_samples] = r.stimulus
        resp[i, : r.n_samples] = r.response
    meta = [dict(worm_id=r.worm_id, modality=r.modality, protocol=r.protocol, source=Path(r.source).name,
                 meta=r.meta) for r in records]
    arrays = {
        "stimulus": stim, "response": resp,
        "n_samples": np.asarray([r.n_samples for r in records], np.int32),
        "t0_s": np.asarray([r.time_s[0] for r in records], np.float64),
        "dt_s": np.asarray([r.dt_s for r in records], np.float64),
        "meta": np.asarray(json.dumps(meta, sort_keys=True)),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for k in sorted(arrays):
            info = zipfile.ZipInfo(f"{k}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, _npy_bytes(arrays[k]), compresslevel=9)
    os.replace(tmp, path)
    return path


def read_records(path: str | Path) -> list[SensoryRecord]:
    """Records from a file written by :func:`write_records`.

    Raises:
        RecordError: missing file or members.
    """
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"{path}: no such file (run python -m owjax.sensory.capture)")
    with np.load(path, allow_pickle=False) as z:
        need = {"stimulus", "response", "n_samples", "t0_s", "dt_s", "meta"}
        if not need <= set(z.files):
            raise RecordError(f"{path}: lacks {sorted(need - set(z.files))}")
        d = {k: z[k] for k in need}
    meta = json.loads(str(d["meta"].reshape(-1)[0]))
    out = []
    for i, m in enumerate(meta):
        n = int(d["n_samples"][i])
        t = d["t0_s"][i] + d["dt_s"][i] * np.arange(n)
        rm = dict(m["meta"])
        for k in ("analysis_window", "baseline_s"):
            if rm.get(k) is not None:
                rm[k] = tuple(rm[k])
        out.append(SensoryRecord(m["worm_id"], m["modality"], m["protocol"], t,
                                 d["stimulus"][i, :n].astype(np.float64), d["response"][i, :n].astype(np.float64),
                                 m["source"], rm))
    return out


def capture(source: str | Path | None = None, out_dir: str | Path | None = None) -> list[Path]:
    """Rebuild ``afd.npz``, ``bag.npz`` and ``README.md``.

    Arguments:
        source: raw data directory (default :func:`default_source`).
        out_dir: where to write (default ``owjax/data/sensory``).

    Returns:
        The written paths.
    """
    src = Path(source or default_source())
    out = Path(out_dir or DATA_DIR)
    missing = [f for fs in SOURCES.values() for f in fs if not (src / f).is_file()]
    if missing:
        raise FileNotFoundError(f"raw sensory data not found under {src}: missing {missing} "
                                "(set OWJAX_SENSORY_SOURCE or pass --source)")
    afd = [r for f in SOURCES["afd"] for r in load_bryant_mat(src / f)]
    bag = [load_zimmer_log(src / f) for f in SOURCES["bag"]]
    paths = [write_records(afd, out / "afd.npz"), write_records(bag, out / "bag.npz")]
    (out / "README.md").write_text(README)
    return paths + [out / "README.md"]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m owjax.sensory.capture", description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default=None, help="raw data directory (default: %(default)s → shared/data/sensory)")
    ap.add_argument("--out", default=None, help="output directory (default: owjax/data/sensory)")
    a = ap.parse_args(argv)
    for p in capture(a.source, a.out):
        print(p)


if __name__ == "__main__":
    main()
