"""``python -m refuseu.remediation`` (what ``accelerate launch -m refuseu.remediation`` runs)."""

import sys

from refuseu.remediation.cli import main

sys.exit(main())
