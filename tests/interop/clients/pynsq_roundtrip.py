"""Run by the interop tests in a subprocess: pynsq Writer publishes, Reader consumes.

usage: pynsq_roundtrip.py NSQD_TCP_ADDR TOPIC COUNT [--lookupd HTTP_URL] [--no-publish]
Prints one JSON line: {"published": n, "received": [...bodies...]}.
"""

import argparse
import json
import sys

import nsq
import tornado.ioloop


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("nsqd")
    ap.add_argument("topic")
    ap.add_argument("count", type=int)
    ap.add_argument("--lookupd", action="append", default=[])
    ap.add_argument("--no-publish", action="store_true")
    ap.add_argument("--timeout", type=float, default=30)
    args = ap.parse_args()
    loop = tornado.ioloop.IOLoop.current()
    received = []
    published = [0]

    def maybe_stop():
        if len(received) >= args.count and (args.no_publish or published[0] >= args.count):
            loop.add_callback(loop.stop)

    def handler(message):
        received.append(message.body.decode())
        maybe_stop()
        return True

    reader_kwargs = {"lookupd_http_addresses": args.lookupd, "lookupd_poll_interval": 1} \
        if args.lookupd else {"nsqd_tcp_addresses": [args.nsqd]}
    nsq.Reader(topic=args.topic, channel="pynsq", message_handler=handler,
               max_in_flight=50, **reader_kwargs)

    if not args.no_publish:
        writer = nsq.Writer([args.nsqd])
        bodies = [f"pynsq-{i}".encode() for i in range(args.count)]

        def done(conn, data):
            if isinstance(data, nsq.Error):
                print(json.dumps({"error": str(data)}), flush=True)
                loop.add_callback(loop.stop)
                return
            published[0] += len(bodies) // 2
            maybe_stop()

        def one_done(conn, data):
            if not isinstance(data, nsq.Error):
                published[0] += 1
            maybe_stop()

        def publish():
            half = len(bodies) // 2
            writer.mpub(args.topic, bodies[:half], callback=done)
            for body in bodies[half:]:
                writer.pub(args.topic, body, callback=one_done)

        loop.call_later(0.5, publish)
    loop.call_later(args.timeout, loop.stop)
    loop.start()
    print(json.dumps({"published": published[0], "received": received}), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
