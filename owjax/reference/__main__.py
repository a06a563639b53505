"""``python -m owjax.reference``: run c302 networks in NEURON or jNML (see :mod:`owjax.reference.runner`)."""

import sys

from owjax.reference.runner import main

if __name__ == "__main__":
    sys.exit(main())
