"""rclpy (ROS 2 Jazzy, rmw_fastrtps serialisation) as a CDR oracle for rlrt's ros2 link tests.

    ros2_cdr_oracle.py encode CASES.json OUT.json
        CASES: [{"type": "sensor_msgs/msg/JointState", "fields": {...}}, ...]
        OUT:   [{"type": ..., "hex": "<exact CDR bytes, encapsulation header included>"}, ...]
    ros2_cdr_oracle.py decode IN.json OUT.json
        IN:    [{"type": ..., "hex": ...}, ...]
        OUT:   [{"type": ..., "fields": {...}, "reencoded_hex": ..., "exact_length": bool}
                or {"type": ..., "error": "..."}, ...]
               (reencoded_hex: rclpy's exact CDR for the decoded message; exact_length: whether
               the input had exactly that many bytes)

`fields` use ROS field names; nested messages are dicts, sequences are lists, uint8[] is a list of
ints. rclpy.init() is never called. serialize_message() can return trailing slack bytes, so the
encoder trims to the shortest prefix that deserialises back to an equal message.

CDR alignment padding written by rmw_fastrtps comes from uninitialised heap memory. So that the
bytes are deterministic (padding = 0x00), the script re-executes itself once with glibc malloc
perturbation enabled unless GLIBC_TUNABLES already sets it.
"""

import importlib
import json
import math
import os
import sys

TUNABLE = "glibc.malloc.perturb=255"


def _ensure_zeroed_heap():
    cur = os.environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.perturb" in cur or os.environ.get("RLRT_CDR_ORACLE_REEXEC"):
        return
    env = dict(os.environ)
    env["GLIBC_TUNABLES"] = (cur + ":" if cur else "") + "glibc.malloc.tcache_count=0:" + TUNABLE
    env["RLRT_CDR_ORACLE_REEXEC"] = "1"
    try:
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    except OSError:
        pass  # carry on: padding bytes may be garbage, structure is still right


SUPPORTED = {
    "std_msgs/msg/Bool",
    "std_msgs/msg/Float64MultiArray",
    "sensor_msgs/msg/JointState",
    "sensor_msgs/msg/Image",
    "sensor_msgs/msg/CompressedImage",
    "trajectory_msgs/msg/JointTrajectory",
}


def msg_class(type_name):
    pkg, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def _namespaced_class(t):
    """rosidl_parser NamespacedType -> Python class."""
    return getattr(importlib.import_module(".".join(t.namespaces)), t.name)


def build(cls, fields):
    from rosidl_parser.definition import AbstractNestedType, NamespacedType

    msg = cls()
    slots = dict(zip(cls.get_fields_and_field_types().keys(), cls.SLOT_TYPES))
    for name, value in fields.items():
        if name not in slots:
            raise ValueError(f"{cls.__name__} has no field {name!r}")
        t = slots[name]
        if isinstance(t, NamespacedType):
            if not isinstance(value, dict):
                raise ValueError(f"{cls.__name__}.{name} must be an object")
            value = build(_namespaced_class(t), value)
        elif isinstance(t, AbstractNestedType) and isinstance(t.value_type, NamespacedType):
            sub = _namespaced_class(t.value_type)
            value = [build(sub, v) for v in value]
        setattr(msg, name, value)
    return msg


def is_msg(v):
    return hasattr(type(v), "get_fields_and_field_types") and hasattr(type(v), "SLOT_TYPES")


def to_plain(v):
    if is_msg(v):
        return {k: to_plain(getattr(v, k)) for k in type(v).get_fields_and_field_types()}
    if isinstance(v, (bytes, bytearray)):
        return list(v)
    if isinstance(v, (str, bool, int)) or v is None:
        return v
    if isinstance(v, float):
        return v
    if hasattr(v, "tolist"):  # array.array, numpy arrays
        return [to_plain(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [to_plain(x) for x in v]
    # numpy scalars etc.
    if hasattr(v, "item"):
        return v.item()
    raise TypeError(f"cannot convert {type(v).__name__} to JSON")


def _json_key(v):
    """NaN-tolerant comparison key."""
    return json.dumps(to_plain(v), sort_keys=True, allow_nan=True)


def _same(a, b):
    try:
        if a == b:
            return True
    except Exception:
        pass
    return _json_key(a) == _json_key(b)


def _has_nan(v):
    p = to_plain(v)
    stack = [p]
    while stack:
        x = stack.pop()
        if isinstance(x, float) and math.isnan(x):
            return True
        if isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return False


def exact_cdr(msg):
    """Shortest prefix of serialize_message(msg) (>= 4 bytes) that deserialises equal to msg.
    Every prefix at or above the true length decodes equal, so scan down from the raw size."""
    from rclpy.serialization import deserialize_message, serialize_message

    raw = bytes(serialize_message(msg))
    cls = type(msg)
    cmp = _same if _has_nan(msg) else (lambda a, b: a == b)
    if not cmp(deserialize_message(raw, cls), msg):
        raise ValueError("serialize_message output does not round-trip")
    n = len(raw)
    while n > 4:
        try:
            ok = cmp(deserialize_message(raw[: n - 1], cls), msg)
        except Exception:
            ok = False
        if not ok:
            break
        n -= 1
    return raw[:n]


def encode(cases):
    out, failures = [], 0
    for case in cases:
        t = case.get("type")
        try:
            if t not in SUPPORTED:
                raise ValueError(f"unsupported type {t!r}")
            msg = build(msg_class(t), case.get("fields") or {})
            out.append({"type": t, "hex": exact_cdr(msg).hex()})
        except Exception as e:
            failures += 1
            out.append({"type": t, "error": f"{type(e).__name__}: {e}"})
            print(f"ros2_cdr_oracle: encode {t}: {e}", file=sys.stderr)
    return out, failures


def decode(items):
    from rclpy.serialization import deserialize_message

    out = []
    for item in items:
        t = item.get("type")
        try:
            if t not in SUPPORTED:
                raise ValueError(f"unsupported type {t!r}")
            data = bytes.fromhex(item["hex"])
            msg = deserialize_message(data, msg_class(t))
            entry = {"type": t, "fields": to_plain(msg)}
            try:
                again = exact_cdr(msg)
                # What rclpy would send for the decoded message; len differs => wrong length in.
                entry["reencoded_hex"] = again.hex()
                entry["exact_length"] = len(again) == len(data)
            except Exception as e:
                entry["reencode_error"] = f"{type(e).__name__}: {e}"
            out.append(entry)
        except Exception as e:
            out.append({"type": t, "error": f"{type(e).__name__}: {e}"})
    return out


def main(argv):
    if len(argv) != 4 or argv[1] not in ("encode", "decode"):
        print(__doc__, file=sys.stderr)
        return 2
    _ensure_zeroed_heap()
    with open(argv[2]) as f:
        items = json.load(f)
    if not isinstance(items, list):
        print("ros2_cdr_oracle: input must be a JSON list", file=sys.stderr)
        return 2
    failures = 0
    if argv[1] == "encode":
        out, failures = encode(items)
    else:
        out = decode(items)
    tmp = argv[3] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f, indent=1)
    os.replace(tmp, argv[3])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
