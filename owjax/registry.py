"""``python -m owjax.registry PARAMS``: where each parameter came from (see :mod:`owjax.fitting.registry`)."""

import sys

from owjax.fitting.registry import main

if __name__ == "__main__":
    sys.exit(main())
