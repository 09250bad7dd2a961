"""nsqadmin in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by
selenium): open Topics, follow a topic, pause it through the confirmation dialog and see
the page change, see the graphs drawn, visit every page. Screenshots are saved under the
test's tmp dir (``<tmp>/screenshots/*.png``).

The cluster (nsqlookupd, two nsqd, nsqadmin) runs in-process on the test's Trio loop;
every blocking WebDriver call runs in a worker thread so the daemons keep serving.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import trio
from helpers import RawConn

from nsqadmin import NSQAdmin
from nsqadmin import Options as AdminOptions
from nsqd import NSQD
from nsqd import Options as NSQDOptions
from nsqlookupd import NSQLookupd
from nsqlookupd import Options as LookupdOptions

webdriver = pytest.importorskip(
    "selenium.webdriver", reason="selenium is not installed (pip install selenium)")
from selenium.common.exceptions import (  # noqa: E402
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

T = TypeVar("T")
TIMEOUT = 30.0

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/lib/chromium/chromedriver" if os.path.exists("/usr/lib/chromium/chromedriver") else None)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless Chromium not available: install the Debian packages chromium and "
           "chromium-driver (scripts/test does)")

# Chromium as root in a closed network: no sandbox, no background/Google traffic
CHROME_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--disable-dev-shm-usage", "--disable-extensions",
               "--disable-default-apps", "--window-size=1400,1000"]


def addr(hostport: tuple[str, int]) -> str:
    return f"{hostport[0]}:{hostport[1]}"


class Browser:
    """A WebDriver whose blocking calls run in a thread (``await b.run(fn)``)."""

    def __init__(self, driver: Any, shots: Path) -> None:
        self.driver = driver
        self.shots = shots
        self.saved: list[Path] = []

    async def run(self, fn: Callable[[], T]) -> T:
        return await trio.to_thread.run_sync(fn)

    async def get(self, url: str) -> None:
        await self.run(lambda: self.driver.get(url))

    async def wait(self, condition: Callable[[Any], Any], what: str, timeout: float = TIMEOUT) -> Any:
        def check(driver: Any) -> Any:
            try:
                return condition(driver)
            except StaleElementReferenceException:
                return False  # the page refreshed under us: look again

        def waiting() -> Any:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(check, what)

        try:
            return await self.run(waiting)
        except TimeoutException:
            await self.shot("timeout")
            raise

    async def click(self, by: str, selector: str) -> None:
        """Click the element, looking it up again if a live refresh replaced it."""
        def clicking(driver: Any) -> bool:
            driver.find_element(by, selector).click()
            return True
        await self.wait(clicking, f"click {selector}")

    async def text(self, by: str, selector: str) -> str:
        return await self.wait(lambda d: d.find_element(by, selector).text, f"text of {selector}")

    async def shot(self, name: str) -> Path:
        path = self.shots / f"{len(self.saved):02d}-{name}.png"
        await self.run(lambda: self.driver.save_screenshot(str(path)))
        self.saved.append(path)
        return path


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in CHROME_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    service = Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = await trio.to_thread.run_sync(lambda: webdriver.Chrome(options=options, service=service))
    shots = tmp_path / "screenshots"
    shots.mkdir()
    try:
        driver.set_page_load_timeout(TIMEOUT)
        yield Browser(driver, shots)
    finally:
        await trio.to_thread.run_sync(driver.quit)
        print(f"screenshots: {shots}")


async def test_operator_flow(nursery: trio.Nursery, tmp_path: Path, browser: Browser) -> None:
    # ---- cluster: nsqlookupd, two nsqd registered with it, nsqadmin over the lookupd
    lookupd = await nursery.start(NSQLookupd(LookupdOptions(
        tcp_address="127.0.0.1:0", http_address="127.0.0.1:0", broadcast_address="127.0.0.1")).run)
    nsqds = []
    for i in range(2):
        (tmp_path / f"nsqd{i}").mkdir()
        nsqd = NSQD(NSQDOptions(tcp_address="127.0.0.1:0", http_address="127.0.0.1:0",
                                broadcast_address="127.0.0.1", data_path=str(tmp_path / f"nsqd{i}"),
                                node_id=i, lookupd_tcp_addresses=[addr(lookupd.real_tcp_addr)]))
        await nursery.start(nsqd.run)
        nsqds.append(nsqd)
    admin = NSQAdmin(AdminOptions(http_address="127.0.0.1:0", graph_sample_interval=0.5,
                                  lookupd_http_addresses=[addr(lookupd.real_http_addr)]))
    base = f"http://{addr(await nursery.start(admin.run))}"
    assert admin.sampler is not None
    node_http = [f"http://{addr(n.bound.http_address)}" for n in nsqds]  # type: ignore[union-attr,arg-type]

    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        for url in node_http:
            await http.post(f"{url}/topic/create", params={"topic": "orders"})
            await http.post(f"{url}/channel/create", params={"topic": "orders", "channel": "billing"})
            await http.post(f"{url}/mpub", params={"topic": "orders"},
                            content=b"\n".join(b"order %d" % i for i in range(40)))
        await http.post(f"{node_http[0]}/topic/create", params={"topic": "audit"})
        with trio.fail_after(TIMEOUT):
            while len((await http.get(f"http://{addr(lookupd.real_http_addr)}/lookup",
                                      params={"topic": "orders"})).json().get("producers", [])) < 2:
                await trio.sleep(0.05)
        consumer = await RawConn.open(nsqds[0].bound.tcp_address)  # type: ignore[union-attr]
        await consumer.identify(client_id="billing-1", hostname="billing.example",
                                user_agent="billing-worker/2.0")
        await consumer.sub("orders", "billing", rdy=3)
        for _ in range(3):
            await consumer.message()
        # samples with traffic in between, so the graphs have depth and a rate
        for round_ in range(3):
            await admin.sampler.wait_sampled()
            await http.post(f"{node_http[round_ % 2]}/mpub", params={"topic": "orders"},
                            content=b"\n".join(b"more %d" % i for i in range(25 * (round_ + 1))))
        await admin.sampler.wait_sampled()

        # ---- Topics
        await browser.get(base + "/")
        await browser.wait(lambda d: d.find_element(By.CSS_SELECTOR, 'tr[data-topic="orders"]'),
                           "orders row")
        assert "Topics" in await browser.text(By.TAG_NAME, "h2")
        row = await browser.text(By.CSS_SELECTOR, 'tr[data-topic="orders"]')
        assert "orders" in row and "/s" in row
        sparks = await browser.run(lambda: browser.driver.find_elements(
            By.CSS_SELECTOR, 'tr[data-topic="orders"] svg.spark path'))
        assert sparks, "sparklines drawn"
        await browser.shot("topics")

        # ---- follow the topic
        await browser.click(By.LINK_TEXT, "orders")
        await browser.wait(lambda d: "orders" in d.find_element(By.TAG_NAME, "h2").text
                           and d.find_elements(By.CSS_SELECTOR, ".topic-actions"), "topic page")
        assert await browser.run(lambda: browser.driver.title) == "orders · nsqadmin"
        nodes_table = await browser.text(By.CSS_SELECTOR, "table.topic-nodes")
        assert "Total:" in nodes_table and "Memory + Disk" in nodes_table

        # ---- the graphs are drawn: real paths with a width on screen
        def drawn(d: Any) -> Any:
            for css in ("svg.chart-depth", "svg.chart-rate"):
                svg = d.find_element(By.CSS_SELECTOR, css)
                if int(svg.get_attribute("data-points")) < 2:
                    return False
                box = d.execute_script(
                    "var p = arguments[0].querySelector('path.line');"
                    "if (!p) return null; var b = p.getBBox();"
                    "return [b.width, b.height, arguments[0].getBoundingClientRect().width];", svg)
                if not box or box[0] <= 0 or box[2] <= 0:
                    return False
            return True
        await browser.wait(drawn, "depth and rate charts drawn")
        depth_title = await browser.text(By.CSS_SELECTOR, "svg.chart-depth .chart-latest")
        assert depth_title.endswith("msgs")
        await browser.shot("topic")

        # ---- pause through the confirmation dialog, see the state change on the page
        await browser.click(By.CSS_SELECTOR, 'button[data-action="pause"]')
        await browser.wait(lambda d: d.find_element(By.ID, "confirm").get_attribute("open") is not None,
                           "confirmation dialog")
        prompt = await browser.text(By.CSS_SELECTOR, "#confirm .confirm-text")
        assert prompt == "Are you sure you want to pause topic orders?"
        await browser.shot("confirm-pause")
        await browser.click(By.CSS_SELECTOR, "#confirm .confirm-ok")
        await browser.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#topic-state .label-paused")
                           and d.find_elements(By.CSS_SELECTOR, 'button[data-action="unpause"]'),
                           "paused label and UnPause button")
        assert (await browser.text(By.CSS_SELECTOR, 'button[data-action="unpause"]')) == "UnPause Topic"
        for url in node_http:
            stats = (await http.get(f"{url}/stats", params={"format": "json", "topic": "orders"})).json()
            assert stats["topics"][0]["paused"] is True
        await browser.shot("topic-paused")

        # cancelling the dialog changes nothing
        await browser.click(By.CSS_SELECTOR, 'button[data-action="unpause"]')
        await browser.wait(lambda d: d.find_element(By.ID, "confirm").get_attribute("open") is not None,
                           "confirmation dialog")
        await browser.click(By.CSS_SELECTOR, '#confirm button[value="cancel"]')
        await browser.wait(lambda d: d.find_element(By.ID, "confirm").get_attribute("open") is None,
                           "dialog closed")
        stats = (await http.get(f"{node_http[0]}/stats", params={"format": "json", "topic": "orders"})).json()
        assert stats["topics"][0]["paused"] is True

        # ---- channel page: per-node rows and the connected client
        await browser.click(By.LINK_TEXT, "billing")
        await browser.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "table.clients-table tr.client"),
                           "client row")
        client = await browser.text(By.CSS_SELECTOR, "table.clients-table tr.client")
        assert "billing.example" in client and "billing-worker/2.0" in client
        assert "(billing-1)" in client
        await browser.wait(drawn, "channel charts drawn")
        await browser.shot("channel")

        # ---- nodes, node, lookup, counter
        await browser.get(base + "/nodes")
        await browser.wait(lambda d: "NSQd Nodes (2)" in d.find_element(By.TAG_NAME, "h2").text,
                           "nodes heading")
        await browser.shot("nodes")
        await browser.click(By.CSS_SELECTOR, "table.nodes-table tr[data-node] td:nth-child(2) a")
        await browser.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "table.node-table"), "node page")
        await browser.shot("node")

        await browser.get(base + "/lookup")
        await browser.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "form.create-form"), "lookup")
        await browser.run(lambda: browser.driver.find_element(By.NAME, "topic").send_keys("invoices"))
        await browser.run(lambda: browser.driver.find_element(By.NAME, "channel").send_keys("archive"))
        await browser.click(By.CSS_SELECTOR, "form.create-form button[type=submit]")
        await browser.click(By.CSS_SELECTOR, "#confirm .confirm-ok")
        await browser.wait(lambda d: "invoices" in d.find_element(By.CSS_SELECTOR, "ul.tree").text,
                           "created topic listed as inactive")
        await browser.shot("lookup")

        expected = 0
        for url in node_http:
            doc = (await http.get(f"{url}/stats", params={"format": "json"})).json()
            expected += sum(c["message_count"] for t in doc["topics"] for c in t["channels"])
        await browser.get(base + "/counter")
        await browser.wait(lambda d: d.find_element(By.ID, "counter-total").text.replace(",", "")
                           == str(expected), "counter shows the total")
        await browser.shot("counter")
        await consumer.aclose()

    for path in browser.saved:
        assert path.stat().st_size > 5000, path
