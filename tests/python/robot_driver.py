"""A robot hardware driver written against rlrt's wire protocol with nothing but the
eclipse-zenoh package and the standard library: it publishes joint state, follows the
commands it receives, and prints a JSON summary. Used by tests/python_driver.rs; also a
template for a real driver (replace the integrator with the robot's API)."""

import argparse
import json
import struct
import threading
import time

import zenoh

CDR_LE = b"\x00\x01\x00\x00"
VERSION = 1


class Writer:
    """CDR (little endian) with alignment counted after the 4-byte header."""

    def __init__(self):
        self.buf = bytearray(CDR_LE)

    def _align(self, n):
        while (len(self.buf) - 4) % n:
            self.buf.append(0)

    def u32(self, v):
        self._align(4)
        self.buf += struct.pack("<I", v)

    def u64(self, v):
        self._align(8)
        self.buf += struct.pack("<Q", v)

    def time(self, ns):
        self._align(4)
        self.buf += struct.pack("<iI", ns // 1_000_000_000, ns % 1_000_000_000)

    def string(self, text):
        data = text.encode() + b"\x00"
        self.u32(len(data))
        self.buf += data

    def u8(self, v):
        self.buf.append(v)

    def f64s(self, values):
        self.u32(len(values))
        if values:
            self._align(8)
        self.buf += struct.pack("<%dd" % len(values), *values)


class Reader:
    def __init__(self, data):
        if bytes(data[:4]) != CDR_LE:
            raise ValueError("not little-endian CDR")
        self.data, self.pos = bytes(data), 4

    def _align(self, n):
        self.pos += (n - (self.pos - 4) % n) % n

    def take(self, fmt, align):
        self._align(align)
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError("truncated")
        value = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def f64s(self):
        (n,) = self.take("<I", 4)
        if n == 0:
            return []
        return list(self.take("<%dd" % n, 8))


def encode_state(seq, stamp_ns, position, velocity):
    w = Writer()
    w.u32(VERSION)
    w.u64(seq)
    w.time(stamp_ns)
    w.f64s(position)
    w.f64s(velocity)
    w.f64s([])  # effort: none measured
    w.f64s([])  # extra sensors
    return bytes(w.buf)


def encode_image(stamp_ns, camera, width, height, pixels):
    """sensor_msgs/Image, rgb8, rows packed."""
    w = Writer()
    w.time(stamp_ns)
    w.string(camera)
    w.u32(height)
    w.u32(width)
    w.string("rgb8")
    w.u8(0)  # is_bigendian
    w.u32(width * 3)
    w.u32(len(pixels))
    w.buf += pixels
    return bytes(w.buf)


def junk_frame(i, stamp_ns, camera, width, height):
    """A frame the runtime must count and drop: alternately cut short, of another size
    than the hw-config's, and not CDR at all."""
    good = encode_image(stamp_ns, camera, width, height, bytes(width * height * 3))
    kind = i % 3
    if kind == 0:
        return good[: len(good) // 2]
    if kind == 1:
        return encode_image(stamp_ns, camera, width + 1, height, bytes((width + 1) * height * 3))
    return b"\xff" * 64


def decode_command(payload):
    r = Reader(payload)
    (version,) = r.take("<I", 4)
    if version != VERSION:
        raise ValueError("version %d" % version)
    (seq,) = r.take("<Q", 8)
    sec, nsec = r.take("<iI", 4)
    mode, flags = r.take("<BB", 1)
    values = r.f64s()
    if r.pos != len(r.data):
        raise ValueError("trailing bytes")
    return {"seq": seq, "mode": mode, "flags": flags, "values": values}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connect", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--dof", type=int, default=3)
    ap.add_argument("--rate-hz", type=float, default=200.0)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--camera", help="also publish rgb8 frames of this camera (30 Hz)")
    ap.add_argument("--width", type=int, default=84)
    ap.add_argument("--height", type=int, default=84)
    ap.add_argument(
        "--junk-frames", type=int, default=0, help="make the first N camera frames malformed"
    )
    args = ap.parse_args()

    conf = zenoh.Config()
    conf.insert_json5("mode", '"peer"')
    conf.insert_json5("connect/endpoints", json.dumps([args.connect]))
    conf.insert_json5("scouting/multicast/enabled", "false")
    session = zenoh.open(conf)

    lock = threading.Lock()
    q = [0.0] * args.dof
    target = list(q)
    received = {"commands": 0, "bad": 0, "last": None}

    def on_command(sample):
        try:
            cmd = decode_command(sample.payload.to_bytes())
        except ValueError:
            received["bad"] += 1
            return
        with lock:
            received["commands"] += 1
            received["last"] = cmd
            if cmd["mode"] == 0 and len(cmd["values"]) == args.dof:
                target[:] = cmd["values"]

    sub = session.declare_subscriber(args.prefix + "/command", on_command)
    pub = session.declare_publisher(args.prefix + "/state", express=True)
    token = session.liveliness().declare_token(args.prefix + "/alive/robot")
    camera = None
    if args.camera:
        camera = session.declare_publisher(args.prefix + "/camera/" + args.camera)
    frames = {"sent": 0, "junk": 0}
    next_frame = 0.0

    dt = 1.0 / args.rate_hz
    seq = 0
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        with lock:
            v = [(t - p) / 0.02 for t, p in zip(target, q)]  # a stiff position servo
            v = [max(-2.0, min(2.0, x)) for x in v]
            q = [p + x * dt for p, x in zip(q, v)]
        seq += 1
        pub.put(encode_state(seq, time.monotonic_ns(), q, v))
        # Frames once the runtime is listening (its first command): a frame published
        # before it subscribed would reach nobody.
        if camera is not None and received["commands"] > 0 and time.monotonic() >= next_frame:
            next_frame = max(next_frame + 1.0 / 30.0, time.monotonic() - 1.0)
            stamp = time.monotonic_ns()
            if frames["junk"] < args.junk_frames:
                camera.put(junk_frame(frames["junk"], stamp, args.camera, args.width, args.height))
                frames["junk"] += 1
            else:
                shade = bytes([frames["sent"] % 256]) * (args.width * args.height * 3)
                camera.put(encode_image(stamp, args.camera, args.width, args.height, shade))
                frames["sent"] += 1
        time.sleep(dt)

    token.undeclare()
    sub.undeclare()
    session.close()
    if camera is not None:
        camera.undeclare()
    summary = {"states_sent": seq, "final_positions": q, **received}
    summary.update({"frames_sent": frames["sent"], "junk_frames_sent": frames["junk"]})
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
