"""``python -m refuseu.auditor.cli``: the same as ``refuseu-audit``."""

import sys

from refuseu.auditor.cli import main

sys.exit(main())
