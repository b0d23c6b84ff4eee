"""Typed options: every flag of every command is generated from one dataclass field, which carries its help
text, its choices and its deprecated spellings. Commands compose small dataclasses (as TRL's
``TrlParser((ScriptArguments, DPOConfig, ModelConfig))`` does), so a flag such as ``--device`` is defined
once and reused by the audit, the judge commands and refuseu-fix.

Layers, lowest first: the dataclass default < a ``--config`` YAML file < flags given on the command line.
Validation lives in each dataclass's ``__post_init__`` and raises one ``RefuseuError`` naming the flag.

Why not transformers' ``HfArgumentParser`` or ``tyro``: refuseu-audit must start without torch or
transformers (HTTP audits need neither), and ``HfArgumentParser`` lives in transformers; tyro nests
composed dataclasses as ``--group.field`` flags, which would break every flag users already have, and
costs more start-up than this module (docs/architecture.md has the figures).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from dataclasses import field
from pathlib import Path
from typing import Any, TypeVar, Union

from refuseu.auditor.errors import RefuseuError

T = TypeVar("T")


def opt(default: Any, help: str, *, choices: tuple[str, ...] | None = None, flag: str | None = None,
        aliases: tuple[str, ...] = (), split: bool = True, cli: bool = True, metavar: str | None = None,
        const: str | None = None) -> Any:
    """A dataclass field that is also a command-line flag.

    ``aliases`` are deprecated spellings kept for one release (using one prints a warning); ``split=False`` keeps
    commas inside list values; ``cli=False`` makes a field settable from code and ``--config`` only; ``const``
    lets the flag stand alone (``--json`` alone means ``--json -``).
    """
    meta = {"help": help, "choices": choices, "flag": flag, "aliases": aliases, "split": split, "cli": cli,
            "metavar": metavar, "const": const}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def flag_of(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("flag") or "--" + f.name.replace("_", "-"))


def base_type(tp: Any) -> tuple[Any, bool]:
    """(inner type, optional?) of a field annotation."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


class _Deprecated(argparse.Action):
    """Stores like the flag it stands for, and says once that the spelling is going away."""

    def __init__(self, *args: Any, new: str, inner: str, **kwargs: Any) -> None:
        self.new, self.inner = new, inner
        super().__init__(*args, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog}: warning: {option_string} is deprecated and will be removed in the next release; "
              f"use {self.new}", file=sys.stderr)
        if self.inner == "store_true":
            setattr(namespace, self.dest, True)
        elif self.inner == "append":
            setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), values])
        else:
            setattr(namespace, self.dest, values)


def add_arguments(parser: argparse.ArgumentParser, cls: type, positional: tuple[str, ...] = ()) -> None:
    """One argument per field of ``cls`` (fields with ``cli=False`` excepted). Names in ``positional`` become
    positional arguments (a list field takes one or more values)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        tp, optional = base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc,operator]
        helptext = meta.get("help", "")
        choices = meta.get("choices")
        if f.name in positional:
            many = typing.get_origin(tp) is list
            parser.add_argument(f.name, help=helptext, metavar=meta.get("metavar") or f.name.upper(),
                                nargs="+" if many else ("?" if optional or default not in ("", None) else None),
                                default=argparse.SUPPRESS if not optional else None)
            continue
        flag = flag_of(f)
        if tp is bool:
            kwargs: dict[str, Any] = {"action": "store_true"}
        elif typing.get_origin(tp) is list:
            shown = ",".join(map(str, default)) or "all"
            kwargs = {"action": "append", "metavar": meta.get("metavar")}
            helptext = f"{helptext} (default: {shown})"
        else:
            # Choices are checked when the value is coerced (one error line), and listed in the help.
            kwargs = {"type": tp if tp in (int, float) else str, "metavar": meta.get("metavar")}
            if choices:
                helptext = f"{helptext} One of: {', '.join(choices)}."
            if meta.get("const") is not None:
                kwargs.update(nargs="?", const=meta["const"])
            helptext = f"{helptext} (default: {default})" if default not in (None, "") else helptext
        parser.add_argument(flag, dest=f.name, default=argparse.SUPPRESS, help=helptext, **kwargs)
        inner = kwargs.get("action", "store")
        for alias in meta.get("aliases", ()):
            extra = {k: v for k, v in kwargs.items() if k != "action"}
            if inner == "store_true":
                extra["nargs"] = 0
            parser.add_argument(alias, dest=f.name, default=argparse.SUPPRESS, help=argparse.SUPPRESS,
                                action=_Deprecated, new=flag, inner=inner, **extra)


def make_parser(cls: type, prog: str, description: str, *, positional: tuple[str, ...] = (), epilog: str | None = None,
                config_flag: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, cls, positional)
    if config_flag:
        parser.add_argument("--config", metavar="FILE.yaml",
                            help="YAML file of defaults for any option above (option: value); flags override it.")
    return parser


def coerce(cls: type, name: str, value: Any, source: str) -> Any:
    """One raw value (a flag's string, a YAML value) as the field's type, or one clear error."""
    hints = typing.get_type_hints(cls)
    f = next(x for x in dataclasses.fields(cls) if x.name == name)
    tp, optional = base_type(hints[name])
    if tp in (object, Any):  # an object handed over by code (a loaded backend): taken as it is
        return value
    if value is None:
        if optional:
            return None
        raise RefuseuError(f"{source}: field '{name}' may not be null")
    if typing.get_origin(tp) is list:
        if isinstance(value, dict):  # e.g. header: {X-Team: audit} in a --config file
            value = [f"{k}={v}" for k, v in value.items()]
        items = value if isinstance(value, list) else [value]
        out: list[str] = []
        for item in items:
            if not isinstance(item, (str, int, float)) or isinstance(item, bool):
                raise RefuseuError(f"{source}: field '{name}' must be a list of strings, got {item!r}")
            if f.metadata.get("split", True):
                out.extend(s.strip() for s in str(item).split(","))
            else:
                out.append(str(item))
        return out
    if typing.get_origin(tp) is dict or tp is dict:
        if not isinstance(value, dict):
            raise RefuseuError(f"{source}: field '{name}' must be a mapping, got {value!r}")
        return dict(value)
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                return value.lower() in ("1", "true", "yes", "on")
            raise ValueError
        if tp is int and (isinstance(value, bool) or (isinstance(value, float) and not value.is_integer())):
            raise ValueError
        if tp in (int, float) and isinstance(value, str):
            value = value.strip()
        if tp is str and not isinstance(value, (str, int, float)):
            raise ValueError
        result = tp(value)
    except (TypeError, ValueError):
        raise RefuseuError(f"{source}: field '{name}' must be {getattr(tp, '__name__', tp)}, got {value!r}") from None
    choices = f.metadata.get("choices")
    if choices and result not in choices:
        where = source if source.startswith("--") else f"{source}: field '{name}'"
        raise RefuseuError(f"{where} must be one of {', '.join(choices)}, got {value!r}")
    return result


def load_yaml_mapping(path: str | Path, flag: str, what: str) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; every failure is one line naming the flag or the file."""
    import yaml

    from refuseu.auditor.textfiles import read_text

    text = read_text(path, flag)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        from refuseu.auditor.textfiles import yaml_error

        raise yaml_error(path, exc) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RefuseuError(f"{path}: must be a mapping of {what}, got {type(data).__name__}")
    return data


def from_mapping(cls: type[T], values: dict[str, Any], source: str, what: str = "option") -> T:
    """An instance of ``cls`` from a mapping of raw values (a YAML file, K=V pairs): unknown keys and bad
    values are one error line naming the source and the field."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    coerced: dict[str, Any] = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in names:
            known = ", ".join(sorted(names)) or "none"
            raise RefuseuError(f"{source}: unknown {what} '{key}' (known: {known})")
        coerced[name] = coerce(cls, name, value, source)
    return cls(**coerced)


def parse_pairs(pairs: list[str], flag: str) -> dict[str, Any]:
    """``K=V`` strings (values read as YAML scalars: 3, true, null) as a mapping."""
    import yaml

    out: dict[str, Any] = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RefuseuError(f"{flag}: expected K=V, got {item!r}")
        try:
            out[key.strip().replace("-", "_")] = yaml.safe_load(value) if value else value
        except yaml.YAMLError:
            out[key.strip().replace("-", "_")] = value
    return out


def build_config(cls: type[T], args: dict[str, Any], config_file: str | None = None) -> T:
    """Dataclass defaults < --config YAML < explicit flags; validation runs in the dataclass."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    if config_file:
        loaded = load_yaml_mapping(config_file, "--config", "option: value")
        for key, value in loaded.items():
            name = str(key).replace("-", "_")
            if name not in names:
                raise RefuseuError(f"{config_file}: unknown field '{key}'")
            values[name] = coerce(cls, name, value, config_file)
    for name, value in args.items():
        if name in names:
            values[name] = coerce(cls, name, value, "--" + name.replace("_", "-"))
    return cls(**values)


def parse_config(parser: argparse.ArgumentParser, cls: type[T], argv: Any) -> tuple[T, set[str]]:
    """Parse argv into ``cls``; also returns the names of the fields given explicitly on the command line."""
    args = vars(parser.parse_args(argv))
    config_file = args.pop("config", None)
    explicit = {k for k in args if k != "config"}
    return build_config(cls, args, config_file), explicit


def at_least(value: float | int | None, minimum: float, flag: str) -> None:
    if value is not None and value < minimum:
        raise RefuseuError(f"{flag} must be at least {minimum:g}, got {value}")
