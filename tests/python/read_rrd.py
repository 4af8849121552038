"""Reads an .rrd with rerun's own Python SDK (rerun-sdk) and prints what it holds as JSON.

Usage: python3 read_rrd.py FILE.rrd [--pixels]

Output: {"scalars": {entity: {"ticks": [...], "values": [...]}},
         "images": {entity: rows}, "text": [{"tick": t, "level": l, "text": s}],
         "timelines": [...], "blueprints": n}
With --pixels, also "pixels": {entity: [{"tick": t, "data": base64 of the image bytes}]}.

Only rerun's reader is used (RrdReader -> chunks -> Arrow record batches), so a test that
compares this with what rlrt computed checks the file as the viewer would see it.
"""

import base64
import json
import sys

import rerun.experimental as rrx


def column(batch, suffix):
    """The column whose name ends with `suffix` (names carry archetype prefixes)."""
    for name in batch.schema.names:
        if name == suffix or name.endswith(":" + suffix) or name.endswith(suffix):
            return batch.column(name)
    return None


def main(path, pixels=False):
    reader = rrx.RrdReader(path)
    out = {"scalars": {}, "images": {}, "text": [], "timelines": set(), "blueprints": 0}
    if pixels:
        out["pixels"] = {}
    out["blueprints"] = len(reader.blueprints())
    for chunk in reader.stream().to_chunks():
        if chunk.is_static:
            continue
        entity = chunk.entity_path
        out["timelines"].update(chunk.timeline_names)
        batch = chunk.to_record_batch()
        # The loop's timeline is `tick`; training plots (`rlrt train --rerun`) use `step`.
        ticks = column(batch, "tick")
        if ticks is None:
            ticks = column(batch, "step")
        ticks = ticks.to_pylist() if ticks is not None else [None] * batch.num_rows
        scalars = column(batch, "Scalars:scalars")
        if scalars is not None:
            s = out["scalars"].setdefault(entity, {"ticks": [], "values": []})
            for t, v in zip(ticks, scalars.to_pylist()):
                if v:
                    s["ticks"].append(t)
                    s["values"].append(v[0])
            continue
        image = column(batch, "Image:buffer")
        depth = column(batch, "DepthImage:buffer")
        if image is not None or depth is not None:
            values = (image if image is not None else depth).to_pylist()
            rows = sum(1 for v in values if v)
            out["images"][entity] = out["images"].get(entity, 0) + rows
            if pixels:
                dump = out["pixels"].setdefault(entity, [])
                for t, v in zip(ticks, values):
                    if v:
                        data = bytes(v[0])
                        dump.append({"tick": t, "data": base64.b64encode(data).decode()})
            continue
        text = column(batch, "TextLog:text")
        if text is not None:
            level = column(batch, "TextLog:level")
            levels = level.to_pylist() if level is not None else [None] * batch.num_rows
            for t, s, l in zip(ticks, text.to_pylist(), levels):
                if s:
                    out["text"].append({"tick": t, "level": l[0] if l else None, "text": s[0]})
    for s in out["scalars"].values():
        order = sorted(range(len(s["ticks"])), key=lambda i: s["ticks"][i])
        s["ticks"] = [s["ticks"][i] for i in order]
        s["values"] = [s["values"][i] for i in order]
    out["timelines"] = sorted(out["timelines"])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], "--pixels" in sys.argv[2:])
