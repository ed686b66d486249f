"""The manifest: params schemas from signatures and type hints, descriptions
from docstrings, policy from the decorator, and permissive schemas (with a
warning, never an exception) for what cannot be described."""

import contextlib
import dataclasses
import enum
import io
import sys
import typing
import unittest

import pybridge_worker as pw

try:
    from typing import TypedDict
except ImportError:  # pragma: no cover - Python < 3.8
    TypedDict = None


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Point(TypedDict):
    x: int
    y: int


class Partial(TypedDict, total=False):
    label: str


@dataclasses.dataclass
class Box:
    width: float
    height: float = 1.0
    tags: typing.List[str] = dataclasses.field(default_factory=list)


def entry(fn, **options):
    """The manifest entry of ``fn`` registered as "m", and what went to stderr."""
    w = pw.Worker("schemas", "1.2.3")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        w.add_method("m", fn, **options)
    (only,) = w.manifest()["methods"]
    return only, err.getvalue()


def params(fn, **options):
    e, warned = entry(fn, **options)
    return e["params_schema"], warned


class TestSchemas(unittest.TestCase):
    def check(self, annotation, expected):
        def fn(x: annotation):
            pass

        schema, warned = params(fn)
        self.assertEqual(schema["properties"]["x"], expected, annotation)
        self.assertEqual(warned, "")

    def test_scalars(self):
        self.check(int, {"type": "integer"})
        self.check(float, {"type": "number"})
        self.check(str, {"type": "string"})
        self.check(bool, {"type": "boolean"})
        self.check(type(None), {"type": "null"})
        self.check(typing.Any, {})

    def test_containers(self):
        self.check(typing.List[int], {"type": "array", "items": {"type": "integer"}})
        self.check(list, {"type": "array"})
        self.check(typing.Dict[str, float], {"type": "object", "additionalProperties": {"type": "number"}})
        self.check(typing.Tuple[int, str], {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}],
                                            "minItems": 2, "maxItems": 2})
        self.check(typing.Tuple[int, ...], {"type": "array", "items": {"type": "integer"}})
        if sys.version_info >= (3, 9):
            self.check(list[str], {"type": "array", "items": {"type": "string"}})
            self.check(dict[str, int], {"type": "object", "additionalProperties": {"type": "integer"}})

    def test_optional_and_unions(self):
        self.check(typing.Optional[int], {"type": ["integer", "null"]})
        self.check(typing.Union[int, str], {"type": ["integer", "string"]})
        self.check(typing.Optional[typing.List[int]],
                   {"anyOf": [{"type": "array", "items": {"type": "integer"}}, {"type": "null"}]})
        if sys.version_info >= (3, 10):
            self.check(eval("int | None"), {"type": ["integer", "null"]})

    def test_literal_enum_typeddict_dataclass(self):
        self.check(typing.Literal["a", "b", 3], {"enum": ["a", "b", 3]})
        self.check(Color, {"enum": ["red", "green"]})
        self.check(Point, {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
                           "required": ["x", "y"], "additionalProperties": False})
        self.check(Partial, {"type": "object", "properties": {"label": {"type": "string"}},
                             "additionalProperties": False})
        self.check(Box, {"type": "object",
                         "properties": {"width": {"type": "number"}, "height": {"type": "number", "default": 1.0},
                                        "tags": {"type": "array", "items": {"type": "string"}}},
                         "required": ["width"], "additionalProperties": False})

    def test_signature_defaults_required_and_positional(self):
        def add(a: int, b: int = 0, *, label: str = "sum", color: Color = Color.RED):
            """Add two numbers.

            More words."""
            return a + b

        e, warned = entry(add)
        self.assertEqual(warned, "")
        self.assertEqual(e["description"], "Add two numbers.\n\nMore words.")
        self.assertEqual(e["positional"], ["a", "b"])
        self.assertEqual(e["params_schema"], {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer", "default": 0},
                           "label": {"type": "string", "default": "sum"},
                           "color": {"enum": ["red", "green"], "default": "red"}},
            "required": ["a"],
            "additionalProperties": False,
        })
        self.assertNotIn("result_schema", e)

    def test_result_schema_from_the_return_annotation(self):
        def f() -> typing.List[int]:
            return []

        self.assertEqual(entry(f)[0]["result_schema"], {"type": "array", "items": {"type": "integer"}})

    def test_context_and_kwargs(self):
        def f(ctx, a, **rest):
            pass

        e, warned = entry(f, context=True)
        self.assertEqual(e["params_schema"], {"type": "object", "properties": {"a": {}}, "required": ["a"],
                                              "additionalProperties": True})
        self.assertEqual(e["positional"], ["a"])

    def test_raw_methods_have_no_params_schema(self):
        e, warned = entry(lambda params: params, raw=True)
        self.assertNotIn("params_schema", e)
        self.assertNotIn("positional", e)

    def test_decorator_policy_and_overrides(self):
        w = pw.Worker("calc", "2.0.0")

        @w.method("calc.add", idempotent=True, cache="10m", timeout="5s", schema={"type": "object"},
                  result_schema={"type": "integer"}, description="Adds.")
        def add(a: int, b: int = 0):
            """Not this."""
            return a + b

        @w.method("calc.slow", cache=1.5, timeout="250ms", idempotent=False)
        def slow():
            pass

        m = w.manifest()
        self.assertEqual((m["protocol_version"], m["name"], m["version"]), ("1.0", "calc", "2.0.0"))
        add_e, slow_e = m["methods"]
        self.assertEqual(add_e, {"name": "calc.add", "description": "Adds.", "params_schema": {"type": "object"},
                                 "positional": ["a", "b"], "result_schema": {"type": "integer"},
                                 "idempotent": True, "cache_ttl_ms": 600000, "timeout_ms": 5000})
        self.assertEqual((slow_e["idempotent"], slow_e["cache_ttl_ms"], slow_e["timeout_ms"]), (False, 1500, 250))
        for bad in ({"cache": "soon"}, {"timeout": -1}, {"timeout": True}, {"cache": "5 weeks"}):
            with self.assertRaises(ValueError, msg=bad):
                w.add_method("bad.%d" % len(w.methods), slow, **bad)
        with self.assertRaises(TypeError):
            w.add_method("bad.schema", slow, schema="not a schema")

    def test_undescribable_signatures_get_a_permissive_schema_and_a_warning(self):
        class Opaque:
            pass

        def opaque(x: Opaque, y: int):
            pass

        schema, warned = params(opaque)
        self.assertEqual(schema["properties"], {"x": {}, "y": {"type": "integer"}})
        self.assertIn("warning: method 'm'", warned)
        self.assertIn("Opaque", warned)

        for fn in (lambda *args: None, eval("lambda a, /: None"), print):
            e, warned = entry(fn)
            self.assertEqual(e.get("params_schema"), {}, fn)
            self.assertNotIn("positional", e)
            self.assertIn("warning", warned)

        def unresolved(x: "DoesNotExist"):  # noqa: F821 - the point of the test
            pass

        schema, warned = params(unresolved)
        self.assertEqual(schema, {})
        self.assertIn("type hints do not resolve", warned)

        def bad_keys(x: typing.Dict[int, str]):
            pass

        schema, warned = params(bad_keys)
        self.assertEqual(schema["properties"]["x"], {})
        self.assertIn("dict keys must be str", warned)

    def test_a_given_schema_silences_the_warning(self):
        _, warned = entry(lambda *args: None, schema={"type": "array"})
        self.assertEqual(warned, "")

    def test_defaults_without_json_form_are_left_out(self):
        def f(x=object(), y=float("nan"), z=(1, 2)):
            pass

        schema, _ = params(f)
        self.assertEqual(schema["properties"], {"x": {}, "y": {}, "z": {"default": [1, 2]}})
        self.assertNotIn("required", schema)

    def test_the_manifest_lists_methods_sorted_and_advertises_concurrency(self):
        w = pw.Worker("x", max_concurrency=3)
        w.add_method("b", lambda: 1)
        w.add_method("a", lambda: 1)
        m = w.manifest()
        self.assertEqual([e["name"] for e in m["methods"]], ["a", "b"])
        self.assertEqual(m["max_concurrency"], 3)


class SignatureWithoutInspect(unittest.TestCase):
    """The SDK reads plain functions' parameters and docstrings from their
    code objects (so a worker starts without importing inspect); what it
    reads must be what inspect says."""

    def check(self, fn):
        import inspect

        from pybridge_worker import schema

        expected = [(int(p.kind), p.name, schema._EMPTY if p.default is p.empty else p.default)
                    for p in inspect.signature(fn).parameters.values()]
        self.assertEqual(schema._parameters(fn), expected, fn)
        self.assertEqual(schema._doc(fn), inspect.getdoc(fn), fn)
        self.assertEqual(schema._has_return_annotation(fn),
                         inspect.signature(fn).return_annotation is not inspect.Signature.empty, fn)

    def test_every_kind_of_parameter_and_default(self):
        def a():
            pass

        def b(x, y=1, *args, z, w=2, **kw) -> int:
            """First line.

                Indented more.
            Back.
            """

        def c(p, q=None, /, r=3, *, s):
            "One line."

        def d(*, only=("t",)):
            """
            Starts on the second line.\t(tab)

            """

        def e(**kw) -> None:
            pass

        def f(x, *args):
            pass

        async def g(a: int, b: str = "x"):
            pass

        for fn in (a, b, c, d, e, f, g, lambda x, y=2: x):
            self.check(fn)

    def test_wrapped_and_other_callables_still_go_through_inspect(self):
        import functools

        def inner(a, b=1):
            """Inner."""

        @functools.wraps(inner)
        def outer(*args, **kwargs):
            return inner(*args, **kwargs)

        class Callable:
            def __call__(self, x, y=2):
                """Call."""

        for fn in (outer, functools.partial(inner, 1), Callable(), Callable().__call__):
            self.check(fn)


if __name__ == "__main__":
    unittest.main()
