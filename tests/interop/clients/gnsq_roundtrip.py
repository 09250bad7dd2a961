"""Run by the interop tests in a subprocess: gnsq Producer publishes, Consumer consumes.

usage: gnsq_roundtrip.py NSQD_TCP_ADDR TOPIC COUNT [--lookupd HTTP_URL] [--no-publish]
Prints one JSON line: {"published": n, "received": [...bodies...]}.
"""

import gevent.monkey

gevent.monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402

import gevent  # noqa: E402
import gnsq  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("nsqd")
    ap.add_argument("topic")
    ap.add_argument("count", type=int)
    ap.add_argument("--lookupd", action="append", default=[])
    ap.add_argument("--no-publish", action="store_true")
    ap.add_argument("--timeout", type=float, default=30)
    args = ap.parse_args()
    received = []
    done = gevent.event.Event()
    published = 0
    if not args.no_publish:
        producer = gnsq.Producer(nsqd_tcp_addresses=[args.nsqd])
        producer.start()
        bodies = [f"gnsq-{i}".encode() for i in range(args.count)]
        half = len(bodies) // 2
        producer.multipublish(args.topic, bodies[:half])
        for body in bodies[half:]:
            producer.publish(args.topic, body)
        published = len(bodies)
        producer.close()
        producer.join()
    kwargs = {"lookupd_http_addresses": args.lookupd, "lookupd_poll_interval": 1} \
        if args.lookupd else {"nsqd_tcp_addresses": [args.nsqd]}
    consumer = gnsq.Consumer(args.topic, "gnsq", max_in_flight=50, **kwargs)

    @consumer.on_message.connect
    def handler(consumer, message):
        received.append(message.body.decode())
        if len(received) >= args.count:
            done.set()

    consumer.start(block=False)
    done.wait(args.timeout)
    consumer.close()
    print(json.dumps({"published": published, "received": received}), flush=True)


if __name__ == "__main__":
    main()
