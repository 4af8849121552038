"""A zenoh router (like rmw_zenoh's rmw_zenohd) for tests: eclipse-zenoh Python, mode "router".

    zenoh_router.py --listen tcp/127.0.0.1:7447 [--listen ...] [--ready PATH]

    zenoh_router.py --listen ... --rmw-zenohd   # peers_failover_brokering off, as rmw_zenohd

Multicast scouting is off; it listens only on the given endpoints. It runs until SIGTERM/SIGINT,
or until its stdin is closed when stdin is a pipe (stdin from /dev/null or a terminal is ignored).
--ready is written (with the router's zid) once the session is open.
"""

import argparse
import json
import os
import signal
import stat
import sys
import threading

import zenoh


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", action="append", required=True)
    p.add_argument("--ready", default="")
    p.add_argument(
        "--rmw-zenohd",
        action="store_true",
        help="rmw_zenohd's routing: no failover brokering, so two peers must reach each other "
        "directly (gossip + a listen endpoint); clients are always routed",
    )
    args = p.parse_args()

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        if stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode):

            def watch_stdin():
                try:
                    while sys.stdin.buffer.read(4096):
                        pass
                except Exception:
                    pass
                stop.set()

            threading.Thread(target=watch_stdin, daemon=True).start()
    except (OSError, ValueError, AttributeError):
        pass

    c = zenoh.Config()
    c.insert_json5("mode", '"router"')
    c.insert_json5("listen/endpoints", json.dumps(args.listen))
    c.insert_json5("connect/endpoints", "[]")
    c.insert_json5("scouting/multicast/enabled", "false")
    if args.rmw_zenohd:
        c.insert_json5("routing/router/peers_failover_brokering", "false")
    c.insert_json5("timestamping/enabled", "{router: true, peer: true, client: true}")
    session = zenoh.open(c)
    if args.ready:
        tmp = args.ready + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(session.zid()) + "\n")
        os.replace(tmp, args.ready)
    # Short waits so a signal is handled promptly (the handler runs on the main thread).
    while not stop.wait(0.1):
        pass
    session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
