"""Run by the transport interop tests in a subprocess: a PyPI client (pynsq or gnsq)
publishes COUNT messages and consumes them, with TLS / snappy / deflate / AUTH options.

usage: transport_roundtrip.py {pynsq,gnsq} NSQD_TCP_ADDR TOPIC COUNT
           [--tls-ca CA_PEM] [--snappy] [--deflate] [--deflate-level N] [--auth-secret S]
           [--timeout SECONDS]
Prints one JSON line: {"published": n, "received": [...], "error": "..."?}.
"""

import sys

LIB = sys.argv[1] if len(sys.argv) > 1 else ""
if LIB == "gnsq":
    import gevent.monkey

    gevent.monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import ssl  # noqa: E402


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("lib", choices=["pynsq", "gnsq"])
    ap.add_argument("nsqd")
    ap.add_argument("topic")
    ap.add_argument("count", type=int)
    ap.add_argument("--tls-ca")
    ap.add_argument("--snappy", action="store_true")
    ap.add_argument("--deflate", action="store_true")
    ap.add_argument("--deflate-level", type=int, default=6)
    ap.add_argument("--auth-secret")
    ap.add_argument("--timeout", type=float, default=20)
    return ap.parse_args()


def conn_kwargs(args):
    kwargs = {"snappy": args.snappy, "deflate": args.deflate, "deflate_level": args.deflate_level}
    if args.tls_ca:
        kwargs["tls_v1"] = True
        kwargs["tls_options"] = {"ca_certs": args.tls_ca, "cert_reqs": ssl.CERT_REQUIRED}
    if args.auth_secret:
        kwargs["auth_secret"] = args.auth_secret.encode()  # gnsq wants bytes
    return kwargs


def run_pynsq(args, bodies, out):
    import nsq
    import tornado.ioloop

    loop = tornado.ioloop.IOLoop.current()
    kwargs = conn_kwargs(args)
    half = len(bodies) // 2
    acks = [0]  # one for the MPUB, one per PUB

    def maybe_stop():
        if len(out["received"]) >= args.count and acks[0] == 1 + len(bodies) - half:
            loop.add_callback(loop.stop)

    def handler(message):
        out["received"].append(message.body.decode())
        maybe_stop()
        return True

    nsq.Reader(topic=args.topic, channel="pynsq", message_handler=handler, max_in_flight=50,
               nsqd_tcp_addresses=[args.nsqd], **kwargs)
    writer = nsq.Writer([args.nsqd], **kwargs)

    def done(count):
        def callback(conn, data):
            if isinstance(data, nsq.Error):
                out["error"] = str(data)
                loop.add_callback(loop.stop)
                return
            out["published"] += count
            acks[0] += 1
            maybe_stop()
        return callback

    def publish():
        if not writer.conns:  # connecting / negotiating / authenticating
            loop.call_later(0.05, publish)
            return
        writer.mpub(args.topic, bodies[:half], callback=done(half))
        for body in bodies[half:]:
            writer.pub(args.topic, body, callback=done(1))

    loop.call_later(0.05, publish)
    loop.call_later(args.timeout, loop.stop)
    loop.start()


def run_gnsq(args, bodies, out):
    import gevent
    import gnsq

    kwargs = conn_kwargs(args)
    done = gevent.event.Event()
    # gnsq 1.0.2's Producer cannot negotiate features: the OK nsqd sends after each
    # upgrade reaches its response handler before its queues exist (KeyError, against
    # Go nsqd as well). Publish through gnsq's connection class instead.
    host, _, port = args.nsqd.rpartition(":")
    try:
        conn = gnsq.NsqdTCPClient(host, int(port), **kwargs)
        conn.connect()
        conn.identify()
        half = len(bodies) // 2
        conn.multipublish(args.topic, bodies[:half])
        commands = 1
        for body in bodies[half:]:
            conn.publish(args.topic, body)
            commands += 1
        for _ in range(commands):
            frame, data = conn.read_response()
            if frame != 0 or data != b"OK":  # FRAME_TYPE_RESPONSE
                raise RuntimeError(f"publish failed: {data!r}")
        out["published"] = len(bodies)
        conn.close_stream()
    except Exception as exc:  # reported to the test
        out["error"] = f"{type(exc).__name__}: {exc}"
        return
    consumer = gnsq.Consumer(args.topic, "gnsq", max_in_flight=50, nsqd_tcp_addresses=[args.nsqd],
                             **kwargs)

    @consumer.on_message.connect
    def handler(consumer, message):
        out["received"].append(message.body.decode())
        if len(out["received"]) >= args.count:
            done.set()

    consumer.start(block=False)
    done.wait(args.timeout)
    consumer.close()


def main():
    args = parse_args()
    bodies = [f"{args.lib}-{i}".encode() for i in range(args.count)]
    out = {"published": 0, "received": []}
    try:
        (run_gnsq if args.lib == "gnsq" else run_pynsq)(args, bodies, out)
    except Exception as exc:  # reported to the test
        out["error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
