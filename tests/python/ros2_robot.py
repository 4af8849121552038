"""A fake ros2_control robot that talks ROS 2 over zenoh the way rmw_zenoh (Jazzy) does.

It is written from rmw_zenoh's wire rules, not from its code: data keys
`<domain>/<topic>/<pkg>::msg::dds_::<Type>_/RIHS01_<hash>`, the 33-byte per-sample attachment
(i64 LE sequence number from 1 per publisher, i64 LE wall-clock ns, 0x10, 16-byte GID), liveliness
tokens under `@ros2_lv/<domain>/<zid>/...` and GID = XXH3-128(token string), low 64 bits first.
Payloads are CDR made and checked with rclpy's serialisation (rclpy.init() is never called, so no
DDS traffic is generated).

The robot publishes sensor_msgs/JointState, follows std_msgs/Float64MultiArray position commands
(or trajectory_msgs/JointTrajectory), checks every command sample it receives and writes a JSON
report at exit. Used by rlrt's ros2-link tests; the ROS Python packages, zenoh and xxhash must be
importable (PYTHONPATH / LD_LIBRARY_PATH set by the caller).
"""

import argparse
import importlib
import json
import os
import signal
import struct
import sys
import threading
import time

import xxhash
import zenoh
from rclpy.serialization import deserialize_message, serialize_message

QOS_DEFAULT = "::,10:,:,:,,"  # rclcpp default profile: KEEP_LAST 10, RELIABLE, VOLATILE
ZERO_HASH = "RIHS01_" + "0" * 64
INJECTIONS = ("no_attachment", "short_attachment", "truncated", "missing_joint", "wrong_hash")


# ---------------------------------------------------------------------------------------------
# Type helpers


def msg_class(type_name):
    """`sensor_msgs/msg/JointState` -> the rosidl Python class."""
    pkg, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def dds_type_name(type_name):
    pkg, kind, name = type_name.split("/")
    return f"{pkg}::{kind}::dds_::{name}_"


def type_hash(type_name):
    """RIHS01 hash of a message type, read from the installed share/<pkg>/msg/<Type>.json."""
    pkg, kind, name = type_name.split("/")
    rel = os.path.join(pkg, kind, name + ".json")
    candidates = []
    # Walk up from the package's module directory to <prefix>/share.
    d = os.path.dirname(os.path.abspath(importlib.import_module(pkg).__file__))
    while True:
        candidates.append(os.path.join(d, "share", rel))
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(os.path.join(get_package_share_directory(pkg), kind, name + ".json"))
    except Exception:
        pass
    for path in candidates:
        if os.path.isfile(path):
            with open(path) as f:
                return json.load(f)["type_hashes"][0]["hash_string"]
    raise SystemExit(f"ros2_robot: no type description for {type_name} (looked for {rel})")


def cdr_bytes(msg):
    """serialize_message() may append slack bytes (rmw_fastrtps reports the estimated size);
    return the true CDR length: the shortest prefix that still deserialises to an equal message.
    Prefixes at or above the true length always decode equal, so scan down from the raw size."""
    raw = serialize_message(msg)
    cls = type(msg)
    n = len(raw)
    while n > 4:
        try:
            ok = deserialize_message(raw[: n - 1], cls) == msg
        except Exception:
            ok = False
        if not ok:
            break
        n -= 1
    return bytes(raw[:n])


def fq_name(namespace, topic):
    if topic.startswith("/"):
        return topic
    return namespace.rstrip("/") + "/" + topic


def strip_slashes(name):
    if name.startswith("/"):
        name = name[1:]
    if name.endswith("/"):
        name = name[:-1]
    return name


def mangle(name):
    return name.replace("/", "%")


def gid_of(token):
    return xxhash.xxh3_128(token.encode()).intdigest().to_bytes(16, "little")


def attachment(seq, gid):
    return struct.pack("<qqB", seq, time.time_ns(), 16) + gid


# ---------------------------------------------------------------------------------------------


class Robot:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.joints = [j for j in args.joints.split(",") if j]
        if not self.joints:
            raise SystemExit("ros2_robot: --joints is empty")
        n = len(self.joints)
        if args.initial:
            init = [float(v) for v in args.initial.split(",")]
            if len(init) != n:
                raise SystemExit("ros2_robot: --initial must have one value per joint")
        else:
            init = [0.0] * n
        self.positions = init
        self.velocities = [0.0] * n
        self.target = None
        self.rate = float(args.rate)
        self.domain = args.domain
        self.ns = args.namespace if args.namespace.startswith("/") else "/" + args.namespace

        from sensor_msgs.msg import JointState
        from builtin_interfaces.msg import Time

        self.JointState = JointState
        self.Time = Time
        self.cmd_type = args.command_type
        self.cmd_cls = msg_class(args.command_type)

        # report
        self.states_published = 0
        self.commands_received = 0
        self.commands_bad_attachment = 0
        self.commands_seq_errors = 0
        self.commands_gid_matches_token = 0
        self.commands_gid_no_match = 0
        self.commands_undecodable = 0
        self.commands_length_mismatch = 0
        self.commands_wrong_length = 0
        self.last_command = []
        self.command_keys = set()
        self.command_topic_keys_any = set()
        self.tokens = []
        self.tokens_deleted = []
        self.injected = []
        self.estop_sent = []
        self.zid = None
        self.session = None

        self.live_tokens = {}  # token -> gid, other zids only
        self.ever_gids = {}  # gid -> token ever seen for the command topic (MP)
        self.pending_gids = []  # (gid, time) not matched at reception, re-checked later
        self.last_seq = {}  # gid -> last sequence number

    # -- zenoh ----------------------------------------------------------------------------------

    def config(self):
        a = self.args
        c = zenoh.Config()
        c.insert_json5("mode", json.dumps(a.mode))
        c.insert_json5("scouting/multicast/enabled", "false")
        c.insert_json5("connect/endpoints", json.dumps(a.connect or []))
        if a.mode != "client":
            # Like rmw_zenoh's session config (tcp/localhost:0): without a listen endpoint two
            # peers behind the same router never reach each other (zenoh 1.10 routes peer<->peer
            # traffic only over a direct link, found by gossip), so default to loopback, port 0.
            c.insert_json5("listen/endpoints", json.dumps(a.listen or ["tcp/127.0.0.1:0"]))
        elif a.listen:
            raise SystemExit("ros2_robot: a client cannot --listen")
        # rmw_zenoh's session config: timestamps on every session kind; quick reconnects for tests.
        c.insert_json5("timestamping/enabled", "{router: true, peer: true, client: true}")
        try:
            c.insert_json5(
                "connect/retry", "{period_init_ms: 100, period_max_ms: 1000, period_increase_factor: 2}"
            )
        except Exception:
            pass
        return c

    def open(self):
        deadline = time.monotonic() + 15.0
        while True:
            try:
                return zenoh.open(self.config())
            except Exception as e:  # a client fails to open while its router is not up yet
                if time.monotonic() > deadline or self.stop.is_set():
                    raise SystemExit(f"ros2_robot: cannot open zenoh session: {e}")
                time.sleep(0.2)

    def setup(self):
        a = self.args
        d = self.domain
        self.session = self.open()
        self.zid = str(self.session.zid())
        node = mangle(a.node_name)
        node_prefix = f"@ros2_lv/{d}/{self.zid}"
        node_tail = f"%/{mangle(self.ns)}/{node}"
        next_id = [0]

        def take_id():
            v = next_id[0]
            next_id[0] += 1
            return v

        nid = take_id()
        self.own_tokens = [f"{node_prefix}/{nid}/{nid}/NN/{node_tail}"]

        def endpoint(kind, topic, type_name):
            fq = fq_name(self.ns, topic)
            h = type_hash(type_name)
            tok = (
                f"{node_prefix}/{nid}/{take_id()}/{kind}/{node_tail}/{mangle(fq)}/"
                f"{dds_type_name(type_name)}/{h}/{QOS_DEFAULT}"
            )
            key = f"{d}/{strip_slashes(fq)}/{dds_type_name(type_name)}/{h}"
            self.own_tokens.append(tok)
            return tok, key, fq

        self.state_token, self.state_key, self.state_fq = endpoint(
            "MP", a.state_topic, "sensor_msgs/msg/JointState"
        )
        self.state_gid = gid_of(self.state_token)
        self.state_seq = 0
        self.cmd_token, self.cmd_key, self.cmd_fq = endpoint("MS", a.command_topic, self.cmd_type)
        self.cmd_topic_chunk = mangle(self.cmd_fq)
        self.estop_key = None
        if a.estop_topic:
            self.estop_token, self.estop_key, _ = endpoint("MP", a.estop_topic, "std_msgs/msg/Bool")
            self.estop_gid = gid_of(self.estop_token)
            self.estop_seq = 0
        # A valid-looking publisher of the same topic with the wrong type hash (never declared).
        self.wrong_key = self.state_key.rsplit("/", 1)[0] + "/" + ZERO_HASH
        self.wrong_gid = gid_of(self.state_token.replace(self.state_key.rsplit("/", 1)[1], ZERO_HASH))
        self.wrong_seq = 0

        s = self.session
        live = s.liveliness()
        # Graph first (rmw_zenoh does the same: get, then subscribe with history).
        self.lv_sub = live.declare_subscriber(f"@ros2_lv/{d}/**", self.on_token, history=True)
        self.token_objs = [live.declare_token(t) for t in self.own_tokens]
        self.state_pub = s.declare_publisher(self.state_key)
        self.estop_pub = s.declare_publisher(self.estop_key) if self.estop_key else None
        self.cmd_sub = s.declare_subscriber(self.cmd_key, self.on_command)
        prefix = f"{d}/{strip_slashes(self.cmd_fq)}"
        self.cmd_any_sub = s.declare_subscriber(prefix + "/**", self.on_any_command_key)
        if a.ready:
            tmp = a.ready + ".tmp"
            with open(tmp, "w") as f:
                f.write(self.zid + "\n")
            os.replace(tmp, a.ready)

    def on_token(self, sample):
        key = str(sample.key_expr)
        parts = key.split("/")
        if len(parts) < 3 or parts[2] == self.zid:
            return
        with self.lock:
            if sample.kind == zenoh.SampleKind.PUT:
                if key not in self.tokens:
                    self.tokens.append(key)
                gid = gid_of(key)
                self.live_tokens[key] = gid
                if len(parts) >= 13 and parts[5] == "MP" and parts[9] == self.cmd_topic_chunk:
                    self.ever_gids[gid] = key
            else:
                self.tokens_deleted.append(key)
                self.live_tokens.pop(key, None)

    def command_gids(self):
        return {
            gid
            for tok, gid in self.live_tokens.items()
            if len(tok.split("/")) >= 13
            and tok.split("/")[5] == "MP"
            and tok.split("/")[9] == self.cmd_topic_chunk
        }

    def on_any_command_key(self, sample):
        with self.lock:
            self.command_topic_keys_any.add(str(sample.key_expr))

    def on_command(self, sample):
        payload = sample.payload.to_bytes()
        att = sample.attachment.to_bytes() if sample.attachment is not None else None
        with self.lock:
            self.commands_received += 1
            self.command_keys.add(str(sample.key_expr))
            if att is None or len(att) != 33 or att[16] != 0x10:
                self.commands_bad_attachment += 1
            else:
                seq = struct.unpack_from("<q", att, 0)[0]
                gid = bytes(att[17:33])
                last = self.last_seq.get(gid)
                if (last is None and seq != 1) or (last is not None and seq != last + 1):
                    self.commands_seq_errors += 1
                self.last_seq[gid] = seq
                if gid in self.command_gids():
                    self.commands_gid_matches_token += 1
                else:
                    # Token and data travel on different priorities: give the token a moment.
                    self.pending_gids.append((gid, time.monotonic()))
        try:
            msg = deserialize_message(payload, self.cmd_cls)
            again = deserialize_message(serialize_message(msg), self.cmd_cls)
            if again != msg:
                raise ValueError("re-serialised message differs")
        except Exception:
            with self.lock:
                self.commands_undecodable += 1
            return
        try:
            exact = len(cdr_bytes(msg)) == len(payload)
        except Exception:
            exact = False
        with self.lock:
            if not exact:
                self.commands_length_mismatch += 1
            self.apply_command(msg)

    def apply_command(self, msg):
        n = len(self.joints)
        if self.cmd_type == "std_msgs/msg/Float64MultiArray":
            values = [float(v) for v in msg.data]
            self.last_command = values
            if len(values) == n:
                self.target = values
            else:
                self.commands_wrong_length += 1  # ros2_control keeps the last good command
            return
        # trajectory_msgs/msg/JointTrajectory
        names = list(msg.joint_names)
        if not msg.points:
            self.last_command = []
            self.commands_wrong_length += 1
            return
        pos = [float(v) for v in msg.points[0].positions]
        ok = (
            len(names) == n
            and len(set(names)) == n
            and set(names) == set(self.joints)
            and len(pos) == n
        )
        if not ok:
            self.last_command = pos
            self.commands_wrong_length += 1
            return
        by_name = dict(zip(names, pos))
        self.target = [by_name[j] for j in self.joints]
        self.last_command = list(self.target)

    def recheck_pending(self, final=False):
        now = time.monotonic()
        with self.lock:
            keep = []
            for gid, t in self.pending_gids:
                if gid in self.ever_gids:
                    self.commands_gid_matches_token += 1
                elif final or now - t > 2.0:
                    self.commands_gid_no_match += 1
                else:
                    keep.append((gid, t))
            self.pending_gids = keep

    # -- publishing -----------------------------------------------------------------------------

    def joint_state(self, drop_first=False):
        ns = time.time_ns()
        msg = self.JointState()
        msg.header.stamp = self.Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
        with self.lock:
            idx = list(range(len(self.joints)))[::-1]
            if drop_first:
                idx = [i for i in idx if i != 0]
            names = [self.joints[i] for i in idx]
            pos = [self.positions[i] for i in idx]
            vel = [self.velocities[i] for i in idx]
        if self.args.extra:
            names = [self.args.extra] + names
            pos = [0.42] + pos
            vel = [0.0] + vel
        msg.name = names
        msg.position = pos
        msg.velocity = vel
        msg.effort = [0.0] * len(names)
        return msg

    def publish_state(self, msg, raw=None):
        self.state_seq += 1
        payload = raw if raw is not None else cdr_bytes(msg)
        self.state_pub.put(payload, attachment=attachment(self.state_seq, self.state_gid))

    def step_plant(self):
        with self.lock:
            if self.target is None:
                self.velocities = [0.0] * len(self.joints)
                return
            new = [p + 0.2 * (t - p) for p, t in zip(self.positions, self.target)]
            self.velocities = [(b - a) * self.rate for a, b in zip(self.positions, new)]
            self.positions = new

    def inject(self, what):
        good = cdr_bytes(self.joint_state())
        if what == "no_attachment":
            self.state_pub.put(good)
        elif what == "short_attachment":
            self.state_pub.put(good, attachment=attachment(self.state_seq + 1, self.state_gid)[:20])
        elif what == "truncated":
            self.publish_state(None, raw=good[: len(good) // 2])
        elif what == "missing_joint":
            self.publish_state(self.joint_state(drop_first=True))
        elif what == "wrong_hash":
            self.wrong_seq += 1
            self.session.put(self.wrong_key, good, attachment=attachment(self.wrong_seq, self.wrong_gid))
        else:
            raise SystemExit(f"ros2_robot: unknown injection {what!r}")
        self.injected.append(what)

    def publish_estop(self, value):
        from std_msgs.msg import Bool

        self.estop_seq += 1
        self.estop_pub.put(cdr_bytes(Bool(data=value)), attachment=attachment(self.estop_seq, self.estop_gid))
        self.estop_sent.append(value)

    def run(self):
        a = self.args
        period = 1.0 / self.rate
        injections = [w for w in (a.inject or "").split(",") if w]
        for w in injections:
            if w not in INJECTIONS:
                raise SystemExit(f"ros2_robot: unknown injection {w!r} (known: {', '.join(INJECTIONS)})")
        estops = [(1.5, True), (2.0, False)] if a.estop_sequence else []
        if estops and not self.estop_pub:
            raise SystemExit("ros2_robot: --estop-sequence needs --estop-topic")
        start = time.monotonic()
        next_tick = start
        # With --clock-from-first-command, the schedule (injections, e-stops, the end of
        # publishing) starts when the controller's first command arrives: its loop is running.
        waiting = a.clock_from_first_command
        end_publish = float("inf") if waiting else start + a.publish_seconds
        end = end_publish + a.linger
        while not self.stop.is_set():
            now = time.monotonic()
            if waiting:
                with self.lock:
                    commanded = self.commands_received > 0
                if commanded:
                    waiting = False
                    start = now
                    end_publish = start + a.publish_seconds
                    end = end_publish + a.linger
            if now >= end:
                break
            if now < end_publish:
                if now >= next_tick:
                    self.step_plant()
                    self.publish_state(self.joint_state())
                    self.states_published += 1
                    elapsed = now - start
                    if injections and elapsed >= 1.0 and not waiting:
                        self.inject(injections.pop(0))
                    while estops and elapsed >= estops[0][0] and not waiting:
                        self.publish_estop(estops.pop(0)[1])
                    next_tick += period
                    if next_tick < now - period:  # fell far behind: don't burst
                        next_tick = now + period
                wait = max(0.0, min(next_tick, end_publish) - time.monotonic())
            else:
                wait = 0.05
            self.recheck_pending()
            time.sleep(min(wait, 0.05))
        self.recheck_pending(final=True)

    def report(self):
        with self.lock:
            return {
                "zid": self.zid,
                "states_published": self.states_published,
                "commands_received": self.commands_received,
                "commands_bad_attachment": self.commands_bad_attachment,
                "commands_seq_errors": self.commands_seq_errors,
                "commands_gid_matches_token": self.commands_gid_matches_token,
                "commands_gid_no_match": self.commands_gid_no_match,
                "commands_undecodable": self.commands_undecodable,
                "commands_length_mismatch": self.commands_length_mismatch,
                "commands_wrong_length": self.commands_wrong_length,
                "last_command": self.last_command,
                "command_keys": sorted(self.command_keys),
                "command_topic_keys_any": sorted(self.command_topic_keys_any),
                "tokens": list(self.tokens),
                "tokens_deleted": list(self.tokens_deleted),
                "final_positions": list(self.positions),
                "target": self.target,
                "injected": list(self.injected),
                "estop_sent": list(self.estop_sent),
                "own_tokens": list(getattr(self, "own_tokens", [])),
                "state_key": getattr(self, "state_key", None),
                "command_key": getattr(self, "cmd_key", None),
                "estop_key": getattr(self, "estop_key", None),
            }

    def write_report(self):
        if not self.args.out:
            return
        tmp = self.args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.report(), f, indent=1)
        os.replace(tmp, self.args.out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--connect", action="append", default=[])
    p.add_argument("--listen", action="append", default=[])
    p.add_argument("--mode", choices=["peer", "client"], default="peer")
    p.add_argument("--domain", type=int, default=0)
    p.add_argument("--namespace", default="/")
    p.add_argument("--node-name", default="fake_ros2_control")
    p.add_argument("--joints", required=True)
    p.add_argument("--extra", default="")
    p.add_argument("--state-topic", default="/joint_states")
    p.add_argument("--command-topic", required=True)
    p.add_argument(
        "--command-type",
        default="std_msgs/msg/Float64MultiArray",
        choices=["std_msgs/msg/Float64MultiArray", "trajectory_msgs/msg/JointTrajectory"],
    )
    p.add_argument("--estop-topic", default="")
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--publish-seconds", type=float, default=5.0)
    p.add_argument("--linger", type=float, default=0.0)
    p.add_argument("--initial", default="")
    p.add_argument("--inject", default="")
    p.add_argument("--clock-from-first-command", action="store_true",
                   help="time injections, e-stops and --publish-seconds from the first command received")
    p.add_argument("--estop-sequence", action="store_true")
    p.add_argument("--out", default="")
    p.add_argument("--ready", default="")
    args = p.parse_args()

    robot = Robot(args)

    def on_signal(signum, frame):
        robot.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        robot.setup()
        robot.run()
    finally:
        robot.write_report()
        for t in getattr(robot, "token_objs", []):
            try:
                t.undeclare()
            except Exception:
                pass
        if getattr(robot, "session", None) is not None:
            robot.session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
