"""Collects episodes from Gymnasium's own environment and writes them as a Minari dataset the
way Minari 0.5 lays one out: data/main_data.hdf5 (episode_N groups) and data/metadata.json (the
serialised observation and action spaces, the environment spec), for the Gymnasium-to-rlrt
tests in tests/import.rs and tests/train_anywhere.rs.

argv: env id, output folder, episodes, seed, action scale[, behaviour].
behaviour: "random" (default): uniform actions times the scale; "reacher": for Reacher-v5,
even episodes from a Jacobian-transpose PD controller toward the target with Gaussian noise of
std `scale` on each action, odd episodes uniformly random (a mixed-quality dataset).
stdout: {"returns": [...], "lengths": [...]} of the collected episodes.
"""
import json
import os
import sys

import gymnasium
import h5py
import numpy as np

env_id, out, episodes, seed, scale = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
behaviour = sys.argv[6] if len(sys.argv) > 6 else "random"
env = gymnasium.make(env_id)
rng = np.random.default_rng(seed)


def reacher_pd(o):
    """Torques J^T kp (target - fingertip) - kd qdot of Reacher-v5's two links (0.1, 0.11 m)."""
    c0, c1, s0, s1 = o[0], o[1], o[2], o[3]
    q0, q1 = np.arctan2(s0, c0), np.arctan2(s1, c1)
    l1, l2 = 0.1, 0.11
    s01, c01 = np.sin(q0 + q1), np.cos(q0 + q1)
    jacobian = np.array([[-l1 * s0 - l2 * s01, -l2 * s01], [l1 * c0 + l2 * c01, l2 * c01]])
    return jacobian.T @ (-20.0 * o[8:10]) - 0.1 * o[6:8]


def act(i, observation):
    if behaviour == "reacher" and i % 2 == 0:
        a = reacher_pd(observation) + rng.normal(0.0, scale, env.action_space.shape)
        return np.clip(a, -1.0, 1.0).astype(np.float32)
    s = scale if behaviour == "random" else 1.0
    return (rng.uniform(-1.0, 1.0, env.action_space.shape) * s).astype(np.float32)


os.makedirs(os.path.join(out, "data"), exist_ok=True)
summary = {"returns": [], "lengths": []}
with h5py.File(os.path.join(out, "data", "main_data.hdf5"), "w") as f:
    for i in range(episodes):
        observation, _ = env.reset(seed=seed + i)
        observations, actions, rewards, terminations, truncations = [observation], [], [], [], []
        while True:
            action = act(i, observation)
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


def space(box):
    # As minari.serialization writes a Box: infinite bounds become JSON's bare Infinity.
    return json.dumps({"type": "Box", "dtype": str(box.dtype), "shape": list(box.shape),
                       "low": box.low.tolist(), "high": box.high.tolist()})


with open(os.path.join(out, "data", "metadata.json"), "w") as f:
    json.dump({"total_episodes": episodes, "total_steps": sum(summary["lengths"]),
               "data_format": "hdf5", "observation_space": space(env.observation_space),
               "action_space": space(env.action_space), "env_spec": env.spec.to_json(),
               "dataset_id": f"test/{env_id.lower()}/{behaviour}-v0", "minari_version": "0.5.3"}, f)
print(json.dumps(summary))
