import pytest

from app.domain.text_template import TemplateError, fill, placeholders


def test_fills_plain_names():
    assert fill("Hello {name}, code {code}.", {"name": "Alice", "code": "42"}) == \
        "Hello Alice, code 42."
    assert placeholders("Hello {name}, {name} again, {x}") == {"name", "x"}


def test_values_are_never_interpreted():
    assert fill("Hi {name}", {"name": "{other} {0.__class__}"}) == "Hi {other} {0.__class__}"


def test_literal_braces():
    assert fill("{{not a var}} {a}", {"a": "b"}) == "{not a var} b"
    assert placeholders("{{x}}") == frozenset()


@pytest.mark.parametrize("text", [
    "{0}", "{name.__class__}", "{name[0]}", "{name!r}", "{name:>10}", "{}", "{ name }",
    "unbalanced {", "unbalanced }", "{a{b}}",
])
def test_anything_but_a_plain_name_is_refused(text):
    with pytest.raises(TemplateError):
        placeholders(text)


def test_missing_variable():
    with pytest.raises(TemplateError, match="name"):
        fill("Hello {name}", {})
