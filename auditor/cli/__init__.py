"""refuseu-audit: ``refuseu-audit MODEL [flags]`` runs an audit; ``refuseu-audit SUBCOMMAND ...`` runs a tool.

Thin by design: parse arguments, call one function. Heavy modules are imported inside the commands so
``--help`` stays fast. A model whose name clashes with a subcommand can be given as ``./name``.
Exit codes: 0 pass, 1 gate failed, 2 usage/config/runtime error (also: errors left in the run).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from refuseu.auditor.cli.common import SUBCOMMANDS

    if argv and argv[0] in SUBCOMMANDS:
        from refuseu.auditor.registry import load_object

        command = load_object(SUBCOMMANDS[argv[0]])
        return int(command(argv[1:]))
    from refuseu.auditor.cli.audit import audit_main

    return audit_main(argv)


if __name__ == "__main__":
    sys.exit(main())
