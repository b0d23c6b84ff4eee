"""refuseu-fix: ``refuseu-fix MODEL --audit RUN --out DIR`` fixes; ``refuseu-fix verify DIR`` re-verifies.

Thin by design: parse, call one function. Exit codes: 0 fixed and verified, 1 verification failed,
2 usage, configuration or runtime error, 3 internal error (a crash; see OUT/crash.log), 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

PROG = "refuseu-fix"
EXIT_CODES = ("Exit codes: 0 verified, 1 verification failed, 2 usage, configuration or runtime error, 3 internal "
              "error (a crash, see OUT/crash.log), 130 interrupted.")


def fix_parser() -> Any:
    from refuseu.auditor.options import make_parser
    from refuseu.remediation.config import FixConfig

    return make_parser(FixConfig, PROG, "Fix the refusal failures an audit found with multilingual DPO, then re-audit "
                       "to prove it.", positional=("model",),
                       epilog=f"Subcommand: '{PROG} verify OUT' re-runs verification of a finished fix.\n" + EXIT_CODES)


def _log_to(quiet: bool):  # type: ignore[no-untyped-def]
    def log(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr)
    return log


def legacy_dpo_config(args: dict[str, Any]) -> None:
    """refuseu-fix's --config used to mean TRL's DPOConfig YAML. A --config file none of whose keys is a refuseu-fix
    option is still read that way for this release, with a warning; --dpo-config is its name now."""
    import dataclasses

    from refuseu.auditor.options import load_yaml_mapping
    from refuseu.remediation.config import FixConfig

    path = args.get("config")
    if not path:
        return
    keys = {str(k).replace("-", "_") for k in load_yaml_mapping(path, "--config", "option: value")}
    ours = {f.name for f in dataclasses.fields(FixConfig)}
    if keys and not keys & ours:
        print(f"{PROG}: warning: --config {path} holds DPOConfig fields; reading it as --dpo-config (the old meaning of "
              "--config, which now takes refuseu-fix's own options; use --dpo-config)", file=sys.stderr)
        args.setdefault("dpo_config", path)
        args["config"] = None


def fix_main(argv: Sequence[str]) -> int:
    from refuseu.auditor.cli.common import run_guarded

    parser = fix_parser()

    def go() -> int:
        from refuseu.auditor.cli.terminal import progress_bars
        from refuseu.auditor.options import build_config, load_yaml_mapping
        from refuseu.remediation.config import FixConfig
        from refuseu.remediation.pipeline import run_fix

        args = vars(parser.parse_args(argv))
        legacy_dpo_config(args)
        config_file = args.pop("config", None)
        explicit = set(args) - {"model"}
        if config_file:  # options set in --config count as given, so they beat the DPOConfig YAML too
            explicit |= {str(k).replace("-", "_") for k in load_yaml_mapping(config_file, "--config", "option: value")}
        cfg = build_config(FixConfig, args, config_file)
        with progress_bars(cfg.quiet) as progress:
            return run_fix(cfg, explicit, progress, _log_to(cfg.quiet))

    return run_guarded(go, PROG)


def verify_main(argv: Sequence[str]) -> int:
    from refuseu.auditor.cli.common import run_guarded
    from refuseu.auditor.options import make_parser
    from refuseu.remediation.config import VerifyCommand

    parser = make_parser(VerifyCommand, f"{PROG} verify", "Verify a finished fix again (re-audit, compare, preference "
                         "margin, capability), from its output folder.", positional=("out",), epilog=EXIT_CODES)

    def go() -> int:
        from pathlib import Path

        from refuseu.auditor.cli.terminal import progress_bars
        from refuseu.auditor.errors import RefuseuError
        from refuseu.auditor.options import parse_config
        from refuseu.remediation.verify import verify

        args, _ = parse_config(parser, VerifyCommand, argv)
        if not args.out:
            raise RefuseuError("OUT is required: a refuseu-fix output folder (holds fix.json)")
        with progress_bars(args.quiet) as progress:
            return verify(Path(args.out), progress, _log_to(args.quiet))

    return run_guarded(go, f"{PROG} verify")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "verify":
        return verify_main(argv[1:])
    return fix_main(argv)


if __name__ == "__main__":
    sys.exit(main())
