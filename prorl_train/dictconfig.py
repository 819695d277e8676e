"""Typed dataclasses from plain dicts (YAML, CLI overrides), with one-line errors.

`build(cls, data)` checks every key against the dataclass's fields (unknown keys get a
did-you-mean hint) and coerces values to the annotated types: nested dataclasses, `X | None`,
`dict[str, T]`, `list[T]`, and the scalars bool / int / float / str (strings such as "1e-5" or
"true" are accepted, since YAML 1.1 and the command line deliver them as text). `merge` and
`apply_override` layer plain dicts (defaults, preset, YAML, `--set section.key=value`) first.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Point:
    ...     x: int = 0
    ...     y: float = 0.0
    >>> build(Point, {"x": "3", "y": "1e-3"})
    Point(x=3, y=0.001)
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any

from prorl_eval.errors import UserError


def build(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build dataclass `cls` from a dict, checking keys and coercing values to field types."""
    if not isinstance(data, dict):
        raise UserError(f"config section '{where or 'root'}' must be a mapping, not {data!r}.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in data.items():
        if key not in names:
            raise UserError(f"unknown config key '{where}{key}'.{_did_you_mean(key, names)}")
        values[key] = _coerce(value, hints[key], f"{where}{key}")
    return cls(**values)


def _did_you_mean(key: str, names: list[str]) -> str:
    close = difflib.get_close_matches(key, names, n=1)
    return f" Did you mean '{close[0]}'?" if close else f" Known: {', '.join(names)}."


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """`value` as type `hint` (dataclass, scalar, optional, dict[str, float], list[list[int]])."""
    if dataclasses.is_dataclass(hint):
        return build(hint, value, f"{where}.")
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, where)
    if origin is dict and isinstance(value, dict):
        return {str(k): _coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if origin is list and isinstance(value, (list, tuple)):
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is None and hint in _SCALARS:
        converted = _SCALARS[hint](value)
        if converted is not None:
            return converted
    raise UserError(f"config value {where}={value!r} is not a valid {_type_name(hint)}.")


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.lower() in ("true", "yes", "1")
    return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads "1e-6" as a string
        except ValueError:
            return None
    return None


_SCALARS = {
    bool: _as_bool,
    int: _as_int,
    float: _as_float,
    str: lambda v: v if isinstance(v, str) else None,
}


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML config file as a dict; UserError when missing or malformed."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"config file {path} is not valid YAML ({exc}).".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of settings.")
    return data


def fields_help(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted name, default, help) for every field of dataclass `cls`, nested ones flattened."""
    rows = []
    for f in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(hint):
            rows.extend(fields_help(hint, f"{prefix}{f.name}."))
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        rows.append((f"{prefix}{f.name}", repr(default), f.metadata.get("help", "")))
    return rows


# ------------------------------------------------------------------------------ layering


def merge(base: dict[str, Any], update: dict[str, Any], sections: frozenset[str]) -> dict[str, Any]:
    """Deep-merge config `sections`; a dict-valued *field* (data.mix) is replaced, not merged."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key in sections:
            out[key] = merge(out[key], value, sections)
        else:
            out[key] = value
    return out


def _split_override(text: str, sections: frozenset[str]) -> tuple[str, str, str]:
    """Split at the first '=', except for a key inside a dict field (`data.mix.<task>=w`):
    task names hold '=' themselves, so those split at the last one."""
    path, sep, raw = text.partition("=")
    parts = path.strip().split(".")
    if len(parts) > 2 and parts[0] in sections:
        return text.rpartition("=")
    return path, sep, raw


def parse_override(text: str, sections: frozenset[str]) -> dict[str, Any]:
    """`a.b=value` → {"a": {"b": value}}; the value is read as YAML (strings stay strings).

    Inside a dict field the rest of the path is one key: `data.mix.gym:x=0.5`.
    """
    import yaml

    path, sep, raw = _split_override(text, sections)
    if not sep or not path.strip():
        raise UserError(f"--set expects key=value (got '{text}').")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    parts = path.strip().split(".")
    if parts[0] in sections and len(parts) > 2:
        parts = [parts[0], parts[1], ".".join(parts[2:])]
    nested: dict[str, Any] = {}
    cursor = nested
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return nested


def apply_override(merged: dict[str, Any], text: str, sections: frozenset[str]) -> dict[str, Any]:
    """Merge one `--set` override; a key inside a dict field (data.mix.<task>) updates that dict
    only."""
    update = parse_override(text, sections)
    parts = _split_override(text, sections)[0].strip().split(".")
    if len(parts) > 2 and parts[0] in sections:
        section, name = parts[0], parts[1]
        current = merged.get(section, {}).get(name)
        if isinstance(current, dict):
            inner = update[section][name]
            update[section][name] = {**current, **inner}
    return merge(merged, update, sections)
