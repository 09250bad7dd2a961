"""A client's IDENTIFY can carry anything (hostname, user agent, client id), and page URLs
can name any topic or channel: nsqadmin's pages, served over HTTP from a real nsqd,
show such strings as text and never as markup."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import httpx
import trio
from helpers import RawConn

from nsqadmin import NSQAdmin
from nsqadmin import Options as AdminOptions
from nsqd import NSQD
from nsqd import Options as NSQDOptions

TIMEOUT = 20.0
EVIL = "<script>alert('x')</script>\"&amp;<img src=x onerror=alert(2)>"


class Page(HTMLParser):
    """Tags, attribute values and text as a browser reads them."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[str] = []
        self.text = ""
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(v for _, v in attrs if v is not None)

    def handle_data(self, data: str) -> None:
        self.text += data


def check(html: str, *shown: str) -> Page:
    page = Page(html)
    assert page.tags.count("script") == 1 and "img" not in page.tags  # only the page's own
    assert "<script>alert" not in html and "<img" not in html
    for value in shown:
        assert value in page.text or value in page.attrs, value
    return page


async def test_identify_strings_and_url_names_are_escaped(nursery: trio.Nursery,
                                                          tmp_path: Path) -> None:
    nsqd = NSQD(NSQDOptions(tcp_address="127.0.0.1:0", http_address="127.0.0.1:0",
                            broadcast_address="127.0.0.1", data_path=str(tmp_path)))
    await nursery.start(nsqd.run)
    assert nsqd.bound is not None and nsqd.bound.http_address is not None
    node = f"127.0.0.1:{nsqd.bound.http_address[1]}"
    admin = NSQAdmin(AdminOptions(http_address="127.0.0.1:0", nsqd_http_addresses=[node]))
    host, port = await nursery.start(admin.run)
    base = f"http://{host}:{port}"
    conn = await RawConn.open(nsqd.bound.tcp_address)
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        await http.post(f"http://{node}/topic/create", params={"topic": "esc"})
        await conn.identify(client_id="id" + EVIL, hostname="host" + EVIL,
                            user_agent="agent/1.0 " + EVIL)
        await conn.sub("esc", "ch", rdy=1)

        page = check((await http.get(f"{base}/topics/esc/ch")).text,
                     "agent/1.0 " + EVIL, "host" + EVIL)
        assert f"(id{EVIL})" in page.text
        check((await http.get(f"{base}/topics/esc")).text)
        check((await http.get(f"{base}/nodes/{node}")).text)

        # names from the URL (nsqd would refuse them; the page still renders them as text)
        hostile = "x\"'><img src=x onerror=alert(1)>&amp;"  # no "/": the router splits on it
        r = await http.get(f"{base}/topics/{quote(hostile, safe='')}/{quote(hostile, safe='')}")
        assert r.status_code == 200
        check(r.text, hostile)
        r = await http.get(f"{base}/topics/{quote(hostile, safe='')}")
        assert r.status_code == 200
        check(r.text, hostile)
    await conn.aclose()
