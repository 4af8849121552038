"""Collects episodes from Gymnasium's own environment with random actions (numpy seeded) and
writes them as a Minari dataset (data/main_data.hdf5: episode_N groups), the way Minari's
DataCollector lays them out, for the Gymnasium-to-rlrt test in tests/import.rs.

argv: env id, output folder, episodes, seed, action scale.
stdout: {"returns": [...], "lengths": [...]} of the collected episodes.
"""
import json
import os
import sys

import gymnasium
import h5py
import numpy as np

env_id, out, episodes, seed, scale = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
env = gymnasium.make(env_id)
rng = np.random.default_rng(seed)
os.makedirs(os.path.join(out, "data"), exist_ok=True)
summary = {"returns": [], "lengths": []}
with h5py.File(os.path.join(out, "data", "main_data.hdf5"), "w") as f:
    for i in range(episodes):
        observation, _ = env.reset(seed=seed + i)
        observations, actions, rewards, terminations, truncations = [observation], [], [], [], []
        while True:
            action = (rng.uniform(-1.0, 1.0, env.action_space.shape) * scale).astype(np.float32)
            observation, reward, terminated, truncated, _ = env.step(action)
            observations.append(observation)
            actions.append(action)
            rewards.append(reward)
            terminations.append(terminated)
            truncations.append(truncated)
            if terminated or truncated:
                break
        g = f.create_group(f"episode_{i}")
        g.attrs["id"] = i
        g.attrs["seed"] = seed + i
        g.attrs["total_steps"] = len(rewards)
        g.create_dataset("observations", data=np.array(observations, dtype=np.float64))
        g.create_dataset("actions", data=np.array(actions, dtype=np.float32))
        g.create_dataset("rewards", data=np.array(rewards, dtype=np.float64))
        g.create_dataset("terminations", data=np.array(terminations, dtype=bool))
        g.create_dataset("truncations", data=np.array(truncations, dtype=bool))
        summary["returns"].append(float(np.sum(rewards)))
        summary["lengths"].append(len(rewards))
    f.attrs["total_episodes"] = episodes
print(json.dumps(summary))
