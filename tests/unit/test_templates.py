"""The template store: rendering, strict variables, and the sandbox, with no network."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from config.settings import Settings
from providers.templates import RenderedEmail, TemplateError, TemplateStore

SSTI_PAYLOADS = [
    "{{ 7*7 }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ config }}",
    "{{ self.__init__.__globals__ }}",
    "{% for x in ().__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "${7*7} #{7*7} <%= 7*7 %>",
]
ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ name.__class__ }}",
    "{% for x in ().__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}",
    "{{ cycler.__init__.__globals__ }}",
]


@pytest.fixture
def shipped() -> TemplateStore:
    return TemplateStore(Settings().templates_dir)


def store_with(tmp_path: Path, files: dict[str, str]) -> TemplateStore:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return TemplateStore(tmp_path)


def test_an_email_renders_its_subject_and_body(shipped: TemplateStore) -> None:
    rendered = shipped.render_email("welcome", {"name": "Ada"})
    assert rendered.subject == "Welcome to your online account, Ada"
    assert rendered.body.startswith("Hello Ada,\n\nYour online account is now ready.")
    assert "Subject:" not in rendered.body


def test_the_monthly_statement_shows_the_amount(shipped: TemplateStore) -> None:
    rendered = shipped.render_email("monthly_statement", {"name": "Ada", "amount": "12.50"})
    assert rendered.subject == "Your monthly statement is ready"
    assert "Hello Ada," in rendered.body
    assert "$12.50" in rendered.body


def test_an_sms_renders_its_text(shipped: TemplateStore) -> None:
    assert shipped.render_sms("reminder", {"name": "Ada"}).startswith("Hello Ada, reminder:")


@pytest.mark.parametrize(
    ("key", "channel"),
    [
        ("welcome", "email"),
        ("welcome", "sms"),
        ("reminder", "email"),
        ("reminder", "sms"),
        ("monthly_statement", "email"),
        ("receipt", "email"),
    ],
)
def test_every_shipped_template_renders(shipped: TemplateStore, key: str, channel: str) -> None:
    payload = {"name": "Ada", "amount": "1.00"}
    if channel == "email":
        rendered = shipped.render_email(key, payload)
        assert rendered.subject and "\n" not in rendered.subject
        assert rendered.body.strip()
    else:
        assert shipped.render_sms(key, payload).strip()


def test_autoescape_is_off_for_plain_text(shipped: TemplateStore) -> None:
    rendered = shipped.render_email("welcome", {"name": "O'Brien & <Co>"})
    assert rendered.subject == "Welcome to your online account, O'Brien & <Co>"


def test_a_missing_variable_is_named_and_no_value_is_quoted(shipped: TemplateStore) -> None:
    with pytest.raises(TemplateError) as caught:
        shipped.render_email("welcome", {"nickname": "SECRET-VALUE"})
    assert str(caught.value) == "template 'welcome' (email subject): missing variable 'name'"


def test_a_missing_item_does_not_quote_the_payload(tmp_path: Path) -> None:
    store = store_with(tmp_path, {"nested.sms.txt": "{{ user.missing }} {{ user[key] }}"})
    with pytest.raises(TemplateError, match="missing attribute or item") as caught:
        store.render_sms("nested", {"user": {"x": "SECRET-VALUE"}, "key": "SECRET-KEY"})
    assert "SECRET" not in str(caught.value)


def test_an_error_inside_an_expression_names_only_its_type(tmp_path: Path) -> None:
    store = store_with(tmp_path, {"sum.sms.txt": "{{ amount + 1 }}"})
    with pytest.raises(TemplateError) as caught:
        store.render_sms("sum", {"amount": "SECRET-VALUE"})
    assert str(caught.value) == "template 'sum' (sms) failed to render (TypeError)"


@pytest.mark.parametrize("value", SSTI_PAYLOADS)
def test_payload_values_are_data_not_template_code(shipped: TemplateStore, value: str) -> None:
    rendered = shipped.render_email("welcome", {"name": value})
    assert rendered.subject == f"Welcome to your online account, {value}"
    assert f"Hello {value}," in rendered.body
    assert "49" not in rendered.body
    assert "<class" not in rendered.body


@pytest.mark.parametrize("expression", ESCAPES)
def test_a_template_file_that_escapes_the_sandbox_is_refused(
    tmp_path: Path, expression: str
) -> None:
    store = store_with(tmp_path, {"evil.sms.txt": f"Hi {{{{ name }}}} {expression}"})
    with pytest.raises(TemplateError, match="operation the sandbox forbids"):
        store.render_sms("evil", {"name": "Ada"})


def test_the_sandbox_is_immutable(tmp_path: Path) -> None:
    store = store_with(tmp_path, {"mutate.sms.txt": "{{ items.append('x') }}{{ items }}"})
    with pytest.raises(TemplateError, match="sandbox forbids"):
        store.render_sms("mutate", {"items": ["a"]})


def test_a_syntax_error_is_reported_with_its_line(tmp_path: Path) -> None:
    store = store_with(tmp_path, {"broken.email.txt": "Subject: Hi\n\nline one\n{{ name }"})
    with pytest.raises(TemplateError, match=r"'broken' \(email\) has a syntax error at line 2"):
        store.render_email("broken", {"name": "Ada"})


@pytest.mark.parametrize(
    "text", ["Hello {{ name }}", "Subject: Hi\nno blank line", "subject: lower\n\nbody"]
)
def test_an_email_template_needs_a_subject_line_then_a_blank_line(
    tmp_path: Path, text: str
) -> None:
    store = store_with(tmp_path, {"odd.email.txt": text})
    with pytest.raises(TemplateError, match="email template 'odd'"):
        store.render_email("odd", {"name": "Ada"})


def test_an_unknown_key_is_refused(shipped: TemplateStore) -> None:
    with pytest.raises(TemplateError, match="unknown email template 'nope'"):
        shipped.render_email("nope", {})
    with pytest.raises(TemplateError, match="unknown sms template 'receipt'"):
        shipped.render_sms("receipt", {"name": "Ada"})


@pytest.mark.parametrize(
    "key", ["../outside", "..", ".hidden", "a/b", "/etc/passwd", "a\\b", "", "a b", "x" * 101]
)
def test_keys_that_could_leave_the_directory_are_refused(tmp_path: Path, key: str) -> None:
    (tmp_path / "outside.sms.txt").write_text("leaked", encoding="utf-8")
    inner = tmp_path / "templates"
    inner.mkdir()
    (inner / "a").mkdir()
    (inner / "a" / "b.sms.txt").write_text("leaked", encoding="utf-8")
    with pytest.raises(TemplateError, match="template key must be"):
        TemplateStore(inner).render_sms(key, {})


def test_templates_are_compiled_once(tmp_path: Path) -> None:
    store = store_with(tmp_path, {"hello.sms.txt": "Hello {{ name }}"})
    assert store.render_sms("hello", {"name": "Ada"}) == "Hello Ada"
    (tmp_path / "hello.sms.txt").write_text("Changed {{ name }}", encoding="utf-8")
    assert store.render_sms("hello", {"name": "Grace"}) == "Hello Grace"


def test_many_threads_render_their_own_values(shipped: TemplateStore) -> None:
    def render(i: int) -> RenderedEmail:
        return shipped.render_email("monthly_statement", {"name": f"N{i}", "amount": str(i)})

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(render, range(400)))
    assert all(f"Hello N{i}," in r.body and f"${i}\n" in r.body for i, r in enumerate(results))
