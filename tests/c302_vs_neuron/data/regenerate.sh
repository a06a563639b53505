#!/usr/bin/env bash
# Regenerates the converged NEURON reference traces in this folder (see README.md).
#
# Needs the reference extra (c302, pyneuroml, neuron) and Java 17. Every NEURON run is cached in
# ~/.cache/owjax/reference (or $OWJAX_CACHE/reference): a rerun only rewrites these files. From an
# empty cache the small configs take minutes, each full network 20-70 min on 2 cores (NEURON at
# dt 0.0005-0.002 ms).
#
# Usage: tests/c302_vs_neuron/data/regenerate.sh [NAME ...]   (default: all; NAME e.g. C1_Full)
set -euo pipefail
cd "$(dirname "$0")/../../.."
PY=${PYTHON:-.venv/bin/python}
OUT=tests/c302_vs_neuron/data
# NEURON at dt and 2*dt, Richardson-extrapolated; float32, gzip 9
REF="$PY -m owjax.reference --simulator neuron --richardson --compact -q"

want() { [ $# -eq 0 ] || [[ " $* " == *" $NAME "* ]]; }

NAME=C1_IClamp;  want "$@" && $REF --parameter-set C1 --config IClamp  --dt-ms 0.0005 --duration-ms 6000 --out-dt-ms 0.2 --out $OUT/$NAME.h5
NAME=C1_Syns;    want "$@" && $REF --parameter-set C1 --config Syns    --dt-ms 0.0005 --duration-ms 3600 --out-dt-ms 0.2 --out $OUT/$NAME.h5
# full networks: every 3rd cell of each population, every 0.5 ms, float32 mantissa rounded to 16 bits
REF="$REF --mantissa-bits 16"
NAME=C1_Full;    want "$@" && $REF --parameter-set C1 --config Full    --dt-ms 0.0005 --duration-ms 1000 --out-dt-ms 0.5 --cell-stride 3 --out $OUT/$NAME.h5
NAME=C2_Full;    want "$@" && $REF --parameter-set C2 --config Full    --dt-ms 0.001  --duration-ms 1000 --out-dt-ms 0.5 --cell-stride 3 --out $OUT/$NAME.h5
NAME=C0_Full;    want "$@" && $REF --parameter-set C0 --config Full    --dt-ms 0.001  --duration-ms 1000 --out-dt-ms 0.5 --cell-stride 3 --out $OUT/$NAME.h5
NAME=C1_Muscles; want "$@" && $REF --parameter-set C1 --config Muscles --dt-ms 0.001  --duration-ms 1000 --out-dt-ms 0.5 --cell-stride 3 --out $OUT/$NAME.h5
# finer C1 Full (dt 0.00025 and 0.000125 ms, full float32 mantissa): what benchmarks/reference_floor.py and
# benchmarks/jaxley_compare.py resolve errors with
REF="${REF% --mantissa-bits 16}"
NAME=C1_Full_dt0.00025; want "$@" && $REF --parameter-set C1 --config Full --dt-ms 0.00025 --duration-ms 1000 --out-dt-ms 0.5 --cell-stride 3 --out $OUT/$NAME.h5
NAME=C1_Full_dt0.000125; want "$@" && $REF --parameter-set C1 --config Full --dt-ms 0.000125 --duration-ms 1000 --out-dt-ms 0.5 --cell-stride 3 --out $OUT/$NAME.h5
ls -l $OUT/*.h5
