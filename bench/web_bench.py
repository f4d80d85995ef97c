"""`vuoro web` under 1,000 phones: how soon a call reaches the called visitor's page, and what a page costs.

Real parts on loopback: a Mosquitto, the hall server (`vuoro server`), `vuoro web` (behind a "proxy" on
127.0.0.1, so each page can come from its own client address), and 1,000 ticket pages connected at once to
their Server-Sent Events stream (one aiohttp client in a process of its own, 1,000 connections, reading every
message). Before each call the probe opens one more page, of the visitor about to be called, and reads it by
plain socket, so that a sample is the server's time and not a thousand streams' reading. A counter then calls the next
visitor again and again (--gap-s apart); each sample is the time from sending `next` to the SSE message on
the called visitor's page that says "called". Every page of the topic gets a message with each call (one fewer ahead),
so the fan-out is part of what is measured.

Memory per page: the web process's RSS with the pages connected minus before, divided by the pages.

    python bench/web_bench.py [--pages 1000] [--calls 200]
Prints the figures and PASS/FAIL: p50 <= 100 ms, p99 <= 1 s, <= 64 KiB per connected page.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.benchlib import Janitor, median_ms, on_signal, p99_ms, rss_mib, verdict  # noqa: E402
from broker.client import HallClient  # noqa: E402
from tests.support.brokers import MosquittoBroker, ServerProcess  # noqa: E402
from tests.web_support import WebProcess  # noqa: E402

P50_MS, P99_MS, PAGE_KIB = 100.0, 1000.0, 64.0
TOPICS = ("general", "taxes")  # counter 1 calls general first: its pages see every call
HALL_ID = "kvarnby"


def issue(client: HallClient, pages: int) -> list[dict[str, Any]]:
    tickets = []
    for index in range(pages):
        topic = TOPICS[0] if index < pages // 2 or pages < 2 else TOPICS[1]
        tickets.append(client.request("issue", topic=topic, timeout=30)["ticket"])
    return tickets


async def hold_pages(url: str, tokens: list[str]) -> None:
    """The 1,000 phones: each page's stream connected and read to the end (run in a process of its own, so
    that reading a thousand streams does not delay the probe that takes the samples)."""
    import aiohttp

    connected = 0

    async def page(session: aiohttp.ClientSession, index: int, token: str) -> None:
        nonlocal connected
        headers = {"X-Forwarded-For": f"10.{index // 250}.{index % 250}.1"}  # each phone its own address
        async with session.get(f"{url}/t/{token}/events?lang=en", headers=headers) as response:
            assert response.status == 200, response.status
            counted = False
            async for line in response.content:
                if line.startswith(b"data: ") and not counted:
                    counted = True
                    connected += 1
                    if connected == len(tokens):
                        print("ready", flush=True)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as session:
        tasks = []
        for index, token in enumerate(tokens):
            tasks.append(asyncio.create_task(page(session, index, token)))
            if index % 50 == 49:
                await asyncio.sleep(0.05)  # connect in waves, as phones would
        await asyncio.gather(*tasks)


def probe(port: int, token: str, index: int) -> socket.socket:
    """One more page of the ticket about to be called, read by plain blocking socket: its first message read."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(f"GET /t/{token}/events?lang=en HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"X-Forwarded-For: 172.16.{index // 250}.{index % 250}\r\n\r\n".encode())
    _read_until(sock, b'"status": "waiting"')
    return sock


def _read_until(sock: socket.socket, marker: bytes) -> None:
    seen = b""
    while marker not in seen:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit(f"the page's stream ended before {marker!r}")
        seen = seen[-len(marker):] + chunk


def measure(port: int, counter: HallClient, queue: list[dict[str, Any]], calls: int, gap_s: float) -> list[float]:
    samples = []
    for index in range(calls):
        ticket = queue[index]  # counter 1 calls its topic's longest waiter: the queue in order
        sock = probe(port, ticket["token"], index)
        sent = time.perf_counter()
        result = counter.request("next", timeout=30)
        if result["ticket"]["number"] != ticket["number"]:
            raise SystemExit(f"expected {ticket['number']} to be called, not {result['ticket']['number']}")
        _read_until(sock, b'"status": "called"')
        samples.append(time.perf_counter() - sent)
        sock.close()
        time.sleep(gap_s)  # the rest of the fan-out (one fewer ahead on every page) goes out meanwhile
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--hold", metavar="URL", help=argparse.SUPPRESS)  # the pages' own process
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--gap-s", type=float, default=0.5,
                        help="between calls (default 0.5 s: a busy hall's six counters call about once in 20 s "
                        "each; 0 measures calls queued behind each other's fan-out)")
    args = parser.parse_args()
    if args.hold:
        asyncio.run(hold_pages(args.hold, sys.stdin.read().split()))
        return 0
    signal.signal(signal.SIGTERM, on_signal)
    janitor = Janitor("web_bench")
    janitor.watchdog(1200)
    folder = Path(tempfile.mkdtemp(prefix="vuoro-web-bench-"))
    try:
        broker = MosquittoBroker().start()
        janitor.add(broker.close)
        server = ServerProcess(folder / "hall.sqlite", broker.address).start()
        janitor.add(server.stop)
        kiosk = HallClient(broker.address, HALL_ID, "kiosk", "bench", presence=False)
        counter = HallClient(broker.address, HALL_ID, "counter", "1", presence=False)
        for client in (kiosk, counter):
            assert client.start(10)
            janitor.add(client.close)
        tickets = issue(kiosk, args.pages)
        counter.request("open")
        web = WebProcess(broker.address, folder, extra=["--trusted-proxy", "127.0.0.1", "--log-level", "WARNING"])
        web.start()
        janitor.add(web.stop)
        queue = [t for t in tickets if t["topic"] == TOPICS[0]]
        calls = min(args.calls, len(queue))
        assert web.proc is not None
        before = rss_mib(web.proc.pid)
        pages = subprocess.Popen([sys.executable, __file__, "--hold", web.url], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        janitor.add(pages.kill)
        assert pages.stdin is not None and pages.stdout is not None
        pages.stdin.write("\n".join(t["token"] for t in tickets))
        pages.stdin.close()
        if pages.stdout.readline().strip() != "ready":
            raise SystemExit("the pages did not all connect")
        time.sleep(2.0)  # let the allocator settle
        after = rss_mib(web.proc.pid)
        samples = measure(web.port, counter, queue, calls, args.gap_s)
        p50, p99 = median_ms(samples), p99_ms(samples)
        per_page = (after - before) * 1024 / max(1, args.pages)
        ok = p50 <= P50_MS and p99 <= P99_MS and per_page <= PAGE_KIB and web.alive
        print(f"web bench: {args.pages} pages connected, {len(samples)} calls {args.gap_s:g} s apart on loopback "
              f"(cores: {os.cpu_count()})")
        print(f"  call -> the called page's SSE message: p50 {p50:.1f} ms (target <= {P50_MS:.0f}), "
              f"p99 {p99:.1f} ms (<= {P99_MS:.0f})")
        print(f"  memory: web RSS {before:.1f} MiB before the pages, {after:.1f} MiB with them: "
              f"{per_page:.1f} KiB per connected page (<= {PAGE_KIB:.0f})")
        print(verdict(ok))
        return 0 if ok else 1
    finally:
        janitor.run()
        subprocess.run(["rm", "-rf", str(folder)], check=False)


if __name__ == "__main__":
    sys.exit(main())
