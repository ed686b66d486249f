"""The manifest: what a worker serves, described from its functions.

Each method's params schema (JSON Schema 2020-12, for the by-name form of
params) comes from the function's signature and type hints, its description
from the docstring, and its policy from the decorator's keyword arguments.
A signature the SDK cannot describe gets a permissive schema and a warning
on stderr, never an exception: the worker must still start.
"""

import enum
import re
import sys
import types
import typing

from .codec import _stderr

__all__ = ["PROTOCOL_VERSION", "describe_method", "parse_duration_ms"]

#: The wire protocol version this SDK speaks (``docs/protocol.md``).
PROTOCOL_VERSION = "1.0"

# The schema of a value about which nothing is known: anything validates.
_ANY = {}

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


class _Undescribable(Exception):
    """A type hint with no JSON Schema equivalent."""


def parse_duration_ms(value, what):
    """Milliseconds from ``"10m"``, ``"5s"``, ``"250ms"``, ``"1h"``, ``"1d"``,
    a number of seconds, or a ``timedelta``. Raises ``ValueError`` naming
    ``what`` otherwise (a mistake in the decorator, found at registration)."""
    if isinstance(value, bool):
        raise ValueError("%s must be a duration like '5s' or '10m', got %r" % (what, value))
    # A timedelta implies its module is loaded: no import for the others.
    datetime = sys.modules.get("datetime")
    if datetime is not None and isinstance(value, datetime.timedelta):
        ms = value.total_seconds() * 1000.0
    elif isinstance(value, (int, float)):
        ms = float(value) * 1000.0
    elif isinstance(value, str):
        m = _DURATION.match(value)
        if m is None:
            raise ValueError("%s must be a duration like '500ms', '5s', '10m', '1h' or '1d', got %r"
                             % (what, value))
        ms = float(m.group(1)) * _UNITS_MS[m.group(2)]
    else:
        raise ValueError("%s must be a duration like '5s' or '10m', got %r" % (what, value))
    if not ms > 0 or ms != ms or ms == float("inf"):
        raise ValueError("%s must be positive, got %r" % (what, value))
    return max(1, int(round(ms)))


def describe_method(name, fn, *, raw, context, options):
    """The manifest entry of one method (a dict), never raising for an
    undescribable signature (it warns on stderr and stays permissive)."""
    entry = {"name": name}
    description = options.get("description")
    if description is None:
        description = _doc(fn)
    if description:
        entry["description"] = str(description).strip()
    problems = []
    if not raw:
        params, positional = _params_schema(fn, context, problems)
        if params is not None:
            entry["params_schema"] = params
        if positional is not None:
            entry["positional"] = positional
    result = _result_schema(fn)
    if result is not None:
        entry["result_schema"] = result
    if options.get("schema") is not None:
        entry["params_schema"] = options["schema"]
    if options.get("result_schema") is not None:
        entry["result_schema"] = options["result_schema"]
    if options.get("idempotent") is not None:
        entry["idempotent"] = bool(options["idempotent"])
    if options.get("cache") is not None:
        entry["cache_ttl_ms"] = parse_duration_ms(options["cache"], "cache of %r" % name)
    if options.get("timeout") is not None:
        entry["timeout_ms"] = parse_duration_ms(options["timeout"], "timeout of %r" % name)
    if problems and options.get("schema") is None:
        _stderr("warning: method %r: %s; its params are not validated (permissive schema)"
                % (name, "; ".join(problems)))
    return entry


def _hints(fn, problems):
    try:
        return typing.get_type_hints(fn)
    except Exception as exc:  # a forward reference that does not resolve, and the like
        problems.append("type hints do not resolve (%s: %s)" % (type(exc).__name__, exc))
        return None


# Parameter kinds, with the values of ``inspect.Parameter``'s.
_POSITIONAL_ONLY, _POSITIONAL_OR_KEYWORD, _VAR_POSITIONAL, _KEYWORD_ONLY, _VAR_KEYWORD = range(5)
_EMPTY = object()  # no default
_CO_VARARGS, _CO_VARKEYWORDS = 0x04, 0x08
_FunctionType = types.FunctionType


def _plain(fn):
    """Whether ``fn`` is a function whose code object says all that
    ``inspect.signature`` would (no wrapper, no explicit signature)."""
    return type(fn) is _FunctionType and not hasattr(fn, "__wrapped__") and not hasattr(fn, "__signature__")


def _parameters(fn):
    """``fn``'s parameters as ``(kind, name, default)`` in signature order
    (default ``_EMPTY`` when none). Read from the code object for plain
    functions, so that a worker does not import ``inspect`` (and ``ast``,
    ``dis`` and ``tokenize`` with it) at start-up; ``inspect.signature`` for
    everything else. Raises ``TypeError`` or ``ValueError`` as it does."""
    if not _plain(fn):
        import inspect

        return [(int(p.kind), p.name, _EMPTY if p.default is p.empty else p.default)
                for p in inspect.signature(fn).parameters.values()]
    code = fn.__code__
    names = code.co_varnames
    count = code.co_argcount
    defaults = fn.__defaults__ or ()
    first_default = count - len(defaults)
    params = []
    for i in range(count):
        kind = _POSITIONAL_ONLY if i < code.co_posonlyargcount else _POSITIONAL_OR_KEYWORD
        params.append((kind, names[i], defaults[i - first_default] if i >= first_default else _EMPTY))
    keyword_only = names[count:count + code.co_kwonlyargcount]
    rest = count + code.co_kwonlyargcount
    if code.co_flags & _CO_VARARGS:
        params.append((_VAR_POSITIONAL, names[rest], _EMPTY))
        rest += 1
    kwdefaults = fn.__kwdefaults__ or {}
    for name in keyword_only:
        params.append((_KEYWORD_ONLY, name, kwdefaults.get(name, _EMPTY)))
    if code.co_flags & _CO_VARKEYWORDS:
        params.append((_VAR_KEYWORD, names[rest], _EMPTY))
    return params


def _has_return_annotation(fn):
    if _plain(fn):
        return "return" in (fn.__annotations__ or {})
    import inspect

    return inspect.signature(fn).return_annotation is not inspect.Signature.empty


def _doc(fn):
    """``inspect.getdoc(fn)``, without importing ``inspect`` for a plain
    function that has its own docstring."""
    doc = getattr(fn, "__doc__", None) if _plain(fn) else None
    if not isinstance(doc, str):
        import inspect

        return inspect.getdoc(fn)
    return _cleandoc(doc)


def _cleandoc(doc):
    """``inspect.cleandoc``: tabs expanded, the common indentation of the
    lines after the first removed, leading and trailing blank lines dropped."""
    lines = doc.expandtabs().split("\n")
    margin = None
    for line in lines[1:]:
        content = len(line.lstrip())
        if content:
            indent = len(line) - content
            margin = indent if margin is None else min(margin, indent)
    lines[0] = lines[0].lstrip()
    if margin is not None:
        lines[1:] = [line[margin:] for line in lines[1:]]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines)


def _params_schema(fn, context, problems):
    """(params_schema, positional) from the signature; (permissive, None)
    when the signature cannot be described."""
    try:
        params = _parameters(fn)
    except (TypeError, ValueError) as exc:
        problems.append("no signature (%s)" % exc)
        return dict(_ANY), None
    if context:
        if not params or params[0][0] not in (_POSITIONAL_ONLY, _POSITIONAL_OR_KEYWORD):
            problems.append("context=True but the function takes no positional context argument")
            return dict(_ANY), None
        params = params[1:]
    hints = _hints(fn, problems)
    if hints is None:
        return dict(_ANY), None
    properties = {}
    required = []
    positional = []
    extra = False
    for kind, name, default in params:
        if kind == _POSITIONAL_ONLY:
            problems.append("parameter %r is positional-only, so it has no name in a params object" % name)
            return dict(_ANY), None
        if kind == _VAR_POSITIONAL:
            problems.append("*%s takes any number of positional params" % name)
            return dict(_ANY), None
        if kind == _VAR_KEYWORD:
            extra = True
            continue
        if name in hints:
            try:
                prop = _type_schema(hints[name], 0)
            except _Undescribable as exc:
                problems.append("parameter %r: %s" % (name, exc))
                prop = dict(_ANY)
        else:
            prop = dict(_ANY)
        if default is _EMPTY:
            required.append(name)
        else:
            default = _json_default(default)
            if default is not _NO_DEFAULT:
                prop = dict(prop)
                prop["default"] = default
        properties[name] = prop
        if kind == _POSITIONAL_OR_KEYWORD:
            positional.append(name)
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema["additionalProperties"] = extra
    return schema, positional


def _result_schema(fn):
    """The return annotation's schema, or None when there is none or it has
    no JSON Schema equivalent (results are not validated, so no warning)."""
    try:
        if not _has_return_annotation(fn):
            return None
    except (TypeError, ValueError):
        return None
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        return None
    if "return" not in hints:
        return None
    try:
        return _type_schema(hints["return"], 0)
    except _Undescribable:
        return None


_NO_DEFAULT = object()


def _json_default(value):
    """A default as JSON, or _NO_DEFAULT when it has no JSON form."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else _NO_DEFAULT
    if isinstance(value, enum.Enum):
        return _json_default(value.value)
    if isinstance(value, (list, tuple)):
        items = [_json_default(v) for v in value]
        return _NO_DEFAULT if any(v is _NO_DEFAULT for v in items) else items
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        items = {k: _json_default(v) for k, v in value.items()}
        return _NO_DEFAULT if any(v is _NO_DEFAULT for v in items.values()) else items
    return _NO_DEFAULT


_UnionType = getattr(types, "UnionType", None)  # X | Y, Python 3.10+
_MAX_DEPTH = 32  # a recursive TypedDict or dataclass stops here


def _type_schema(tp, depth):
    """The JSON Schema of one type hint; raises _Undescribable."""
    if depth > _MAX_DEPTH:
        raise _Undescribable("type nests too deeply (recursive?)")
    if tp is typing.Any or tp is object:
        return {}
    if tp is None or tp is type(None):
        return {"type": "null"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str:
        return {"type": "string"}
    if tp in (list, tuple, set, frozenset):
        return {"type": "array"}
    if tp is dict:
        return {"type": "object"}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or (_UnionType is not None and origin is _UnionType):
        return _union_schema(args, depth)
    if origin is typing.Literal:
        values = list(args)
        for v in values:
            if not (v is None or isinstance(v, (bool, int, str))):
                raise _Undescribable("Literal value %r is not JSON" % (v,))
        return {"enum": values}
    if origin is getattr(typing, "Annotated", None):
        return _type_schema(args[0], depth + 1)
    if origin in (list, set, frozenset) or _is_abc(origin, ("Sequence", "MutableSequence", "Set", "Iterable",
                                                             "Collection", "AbstractSet", "MutableSet")):
        schema = {"type": "array"}
        if args:
            schema["items"] = _type_schema(args[0], depth + 1)
        return schema
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _type_schema(args[0], depth + 1)}
        if args == ((),) or not args:
            return {"type": "array", "maxItems": 0} if args else {"type": "array"}
        items = [_type_schema(a, depth + 1) for a in args]
        return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}
    if origin is dict or _is_abc(origin, ("Mapping", "MutableMapping")):
        schema = {"type": "object"}
        if args:
            if args[0] is not str:
                raise _Undescribable("dict keys must be str in JSON, got %s" % _name(args[0]))
            schema["additionalProperties"] = _type_schema(args[1], depth + 1)
        return schema
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = [m.value for m in tp]
        for v in values:
            if not (v is None or isinstance(v, (bool, int, float, str))):
                raise _Undescribable("enum %s has a value that is not JSON: %r" % (tp.__name__, v))
        return {"enum": values}
    if _is_typeddict(tp):
        return _typeddict_schema(tp, depth)
    # A dataclass implies its module is loaded: the test needs no import.
    if isinstance(tp, type) and hasattr(tp, "__dataclass_fields__"):
        return _dataclass_schema(tp, depth)
    raise _Undescribable("no JSON Schema for the type %s" % _name(tp))


def _union_schema(args, depth):
    nullable = type(None) in args
    rest = [a for a in args if a is not type(None)]
    schemas = [_type_schema(a, depth + 1) for a in rest]
    simple = all(set(s) == {"type"} and isinstance(s["type"], str) for s in schemas)
    if simple:
        types = [s["type"] for s in schemas] + (["null"] if nullable else [])
        return {"type": types[0] if len(types) == 1 else types}
    if nullable:
        schemas.append({"type": "null"})
    return schemas[0] if len(schemas) == 1 else {"anyOf": schemas}


def _is_abc(origin, names):
    import collections.abc as abc

    return origin is not None and any(origin is getattr(abc, n, None) for n in names)


def _is_typeddict(tp):
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__total__") \
        and hasattr(tp, "__annotations__")


def _typeddict_schema(tp, depth):
    try:
        hints = typing.get_type_hints(tp)
    except Exception as exc:
        raise _Undescribable("TypedDict %s: hints do not resolve (%s)" % (tp.__name__, exc)) from None
    required_keys = getattr(tp, "__required_keys__", None)
    if required_keys is None:  # pragma: no cover - Python < 3.9
        required_keys = set(hints) if tp.__total__ else set()
    properties = {k: _type_schema(v, depth + 1) for k, v in hints.items()}
    schema = {"type": "object", "properties": properties}
    required = [k for k in hints if k in required_keys]
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    return schema


def _dataclass_schema(tp, depth):
    import dataclasses

    try:
        hints = typing.get_type_hints(tp)
    except Exception as exc:
        raise _Undescribable("dataclass %s: hints do not resolve (%s)" % (tp.__name__, exc)) from None
    properties = {}
    required = []
    for f in dataclasses.fields(tp):
        if not f.init:
            continue
        prop = _type_schema(hints.get(f.name, typing.Any), depth + 1)
        if f.default is not dataclasses.MISSING:
            default = _json_default(f.default)
            if default is not _NO_DEFAULT:
                prop = dict(prop, default=default)
        elif f.default_factory is dataclasses.MISSING:
            required.append(f.name)
        properties[f.name] = prop
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    return schema


def _name(tp):
    return getattr(tp, "__qualname__", None) or getattr(tp, "__name__", None) or repr(tp)
