"""``python -m owjax.compare A.h5 B.h5``: compare two traces files (see :mod:`owjax.reference.compare`)."""

import sys

from owjax.reference.compare import main

if __name__ == "__main__":
    sys.exit(main())
