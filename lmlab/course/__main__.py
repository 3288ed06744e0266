"""``python -m lmlab.course build|grade ...``: the same as ``lmlab course ...``."""

import sys

from lmlab.course.cli import main

sys.exit(main())
