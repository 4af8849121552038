"""Runs an exported policy in Gymnasium's own environment, as an evaluator outside rlrt would:
ONNX Runtime maps each float32 observation [1, O] to an action [1, A] in the environment's
units, which goes to env.step unchanged (no clipping here: the graph must already respect
the action space).

argv: env id, policy (.onnx file, or "random" for uniform actions), episodes, seed.
stdout: {"returns": [...], "out_of_bounds": n} (actions outside the action space).
"""
import json
import sys

import gymnasium
import numpy as np

env_id, policy, episodes, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
env = gymnasium.make(env_id)
rng = np.random.default_rng(seed)
if policy != "random":
    import onnxruntime

    session = onnxruntime.InferenceSession(policy, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
returns, out_of_bounds = [], 0
for i in range(episodes):
    observation, _ = env.reset(seed=seed + i)
    total = 0.0
    while True:
        if policy == "random":
            action = rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)
        else:
            x = np.asarray(observation, dtype=np.float32)[None, :]
            action = session.run(None, {name: x})[0][0]
        if not env.action_space.contains(action.astype(env.action_space.dtype)):
            out_of_bounds += 1
        observation, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        if terminated or truncated:
            break
    returns.append(total)
print(json.dumps({"returns": returns, "out_of_bounds": out_of_bounds}))
