"""Writes episodes given as JSON on stdin into a Minari or D4RL HDF5 file with h5py, the way
those projects lay their files out, for the `rlrt import` tests.

Input: {"path": str, "layout": "minari" | "d4rl", "next_observations": bool,
        "action_dtype": "float32" | "float64", "nan_action": bool (Minari only: the first
        action value becomes NaN),
        "episodes": [{"seed": int, "success": bool, "observations": [[...]] (T + 1 rows),
                      "actions": [[...]], "rewards": [...], "terminals": [...],
                      "timeouts": [...]}]}
"""

import json
import sys

import h5py
import numpy as np


def minari(f, spec):
    for i, e in enumerate(spec["episodes"]):
        g = f.create_group(f"episode_{i}")
        g.attrs["id"] = i
        g.attrs["seed"] = e["seed"]
        g.attrs["total_steps"] = len(e["rewards"])
        g.create_dataset("observations", data=np.array(e["observations"], dtype=np.float64))
        actions = np.array(e["actions"], dtype=spec["action_dtype"])
        if spec.get("nan_action") and i == 0:
            actions[0, 0] = np.nan
        g.create_dataset("actions", data=actions)
        g.create_dataset("rewards", data=np.array(e["rewards"], dtype=np.float64))
        g.create_dataset("terminations", data=np.array(e["terminals"], dtype=bool))
        g.create_dataset("truncations", data=np.array(e["timeouts"], dtype=bool))
        infos = g.create_group("infos")
        success = [False] * len(e["rewards"]) + [e["success"]]
        infos.create_dataset("success", data=np.array(success, dtype=bool))
    f.attrs["total_episodes"] = len(spec["episodes"])


def d4rl(f, spec):
    cols = {k: [] for k in ["observations", "next_observations", "actions", "rewards",
                            "terminals", "timeouts"]}
    for e in spec["episodes"]:
        t = len(e["rewards"])
        cols["observations"] += e["observations"][:t]
        cols["next_observations"] += e["observations"][1:]
        cols["actions"] += e["actions"]
        cols["rewards"] += e["rewards"]
        cols["terminals"] += e["terminals"]
        cols["timeouts"] += e["timeouts"]
    for k, v in cols.items():
        if k == "next_observations" and not spec["next_observations"]:
            continue
        dtype = {"actions": spec["action_dtype"], "terminals": bool, "timeouts": bool}.get(
            k, np.float32 if k == "rewards" else np.float64)
        f.create_dataset(k, data=np.array(v, dtype=dtype))


def main():
    spec = json.load(sys.stdin)
    with h5py.File(spec["path"], "w") as f:
        (minari if spec["layout"] == "minari" else d4rl)(f, spec)


if __name__ == "__main__":
    main()
