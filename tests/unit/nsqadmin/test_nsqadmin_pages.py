"""nsqadmin's pages from their Jinja2 templates: every template renders under
StrictUndefined for a representative cluster state, and every string a client or an
nsqd controls is escaped (shown as text, never markup) on every page that shows it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from html.parser import HTMLParser

import jinja2
import jinja2.meta
import pytest
from pages_state import EVIL, render_all

from nsqadmin import pages
from nsqadmin.graphs import SeriesStore
from nsqadmin.render import environment, render
from nsqadmin.stats import aggregate_topic


class Parsed(HTMLParser):
    """Tags, attributes and text of a page (entities decoded, as a browser reads them)."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def attr_values(self) -> Iterator[str]:
        for _, attrs in self.tags:
            yield from (v for v in attrs.values() if v is not None)


@pytest.fixture(scope="module")
def plain() -> dict[str, str]:
    return render_all(hostile=False)


@pytest.fixture(scope="module")
def hostile() -> dict[str, str]:
    return render_all(hostile=True)


def test_environment_is_strict_and_autoescaping() -> None:
    env = environment()
    assert env.undefined is jinja2.StrictUndefined
    assert env.is_async is False
    with pytest.raises(jinja2.UndefinedError):
        render("error.html", title="t", warning="", error="", live=True, base="")  # no ctx
    assert str(env.from_string("{{ x }}").render(x="<b>")) == "&lt;b&gt;"
    assert callable(env.autoescape)
    assert env.autoescape("topics.html") and env.autoescape("charts.svg")


def test_every_template_renders(monkeypatch: pytest.MonkeyPatch) -> None:
    used: set[str] = set()

    def recording(template: str, /, **variables: object) -> str:
        used.add(template)
        return render(template, **variables)
    monkeypatch.setattr(pages, "render", recording)
    for hostile in (False, True):
        out = render_all(hostile=hostile)
        assert all(out.values())
    env = environment()
    assert env.loader is not None
    referenced = set()
    for name in used:
        source = env.loader.get_source(env, name)[0]
        referenced |= set(jinja2.meta.find_referenced_templates(env.parse(source)))
    charts = {"charts.svg"}  # pages.chart and charts.sparkline render its macros directly
    assert used | referenced | charts == set(env.list_templates())


def test_pages_are_well_formed(plain: dict[str, str]) -> None:
    for name, text in plain.items():
        page = Parsed(text)
        if name.startswith("chart-"):
            assert page.tags[0][0] == "svg", name
            continue
        assert text.startswith("<!doctype html>\n<html lang=\"en\">") and text.endswith("</html>\n")
        assert [t for t, _ in page.tags].count("main") == 1, name
        for _tag, attrs in page.tags:
            if "data-body" in attrs:
                json.loads(attrs["data-body"] or "")


def test_hostile_strings_are_text_on_every_page(plain: dict[str, str],
                                                hostile: dict[str, str]) -> None:
    shown = set()
    for name, text in hostile.items():
        assert "<script>alert" not in text, name
        assert EVIL not in text, name
        page, safe = Parsed(text), Parsed(plain[name])
        # nothing injected: the same kinds of tags and attributes as with plain names
        assert {t for t, _ in page.tags} == {t for t, _ in safe.tags}, name
        assert {(t, a) for t, attrs in page.tags for a in attrs} == \
            {(t, a) for t, attrs in safe.tags for a in attrs}, name
        # ... and the hostile text reads back exactly as the client sent it
        if EVIL in "".join(page.text) or any(EVIL in v for v in page.attr_values()):
            shown.add(name.split("-")[0])
    # the warning banner is on every page that has one; clients, nsqd hostnames and
    # versions, lookupd connections and TLS details on their pages
    assert {"topics", "topic", "channel", "nodes", "node", "lookup", "error"} <= shown


def test_client_attributes_escaped(hostile: dict[str, str]) -> None:
    page = Parsed(hostile["channel-root-admin-2"])
    text = "".join(page.text)
    for value in ("pynsq/0.9" + EVIL, "app1.example" + EVIL, "Authed svc1" + EVIL,
                  "(worker-1" + EVIL + ")"):
        assert value in text, value
    tls = [a["title"] for t, a in page.tags if t == "span" and a.get("class") == "label label-warning"]
    assert tls and all(v == "TLS1.3" + EVIL + " TLS_AES_128_GCM_SHA256" for v in tls)
    nodes = Parsed(hostile["nodes-root-admin-2"])
    assert "nsqd-a" + EVIL in "".join(nodes.text) and "1.3.0" + EVIL in "".join(nodes.text)
    assert any(v == "lookupd-1" + EVIL for v in nodes.attr_values())


def test_hostile_names_from_the_url() -> None:
    # topic and channel names of page URLs are not validated before the page renders
    ctx = pages.Context(base_path="/", is_admin=True, lookupd=["l:4161"], active="topics",
                        refresh=5.0, sample_interval=10.0,
                        store=SeriesStore(4, 10))
    name = 'x"><script>alert(1)</script>'
    for text in (pages.channel_page(ctx, name, name, None, ""),
                 pages.topic_page(ctx, aggregate_topic(name, []), ""),
                 pages.error_page(ctx, 404, name)):
        page = Parsed(text)
        assert [t for t, _ in page.tags].count("script") == 1  # the page's own script
        assert name in "".join(page.text)
