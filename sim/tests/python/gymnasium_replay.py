"""Replays actions in Gymnasium's own environment from a given physics state, for the
conformance test of rlrt's Gymnasium tasks (sim/tests/gymnasium.rs).

stdin: {"env": "Hopper-v5", "qpos": [...], "qvel": [...], "actions": [[...], ...]}
stdout: {"observation": [...], "steps": [{"observation", "reward", "terminated"}, ...]}
Stops after the first terminated step, as an episode would.
"""
import json
import sys

import gymnasium
import numpy as np

job = json.load(sys.stdin)
env = gymnasium.make(job["env"])
env.reset(seed=0)
raw = env.unwrapped
raw.set_state(np.array(job["qpos"]), np.array(job["qvel"]))
out = {"observation": raw._get_obs().tolist(), "steps": []}
for action in job["actions"]:
    observation, reward, terminated, truncated, _ = env.step(np.array(action))
    out["steps"].append(
        {
            "observation": observation.tolist(),
            "reward": float(reward),
            "terminated": bool(terminated),
        }
    )
    if terminated:
        break
print(json.dumps(out))
