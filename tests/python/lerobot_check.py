"""Loads a LeRobot v3.0 dataset the way LeRobot does and prints what it read as JSON.

LeRobot itself needs torch, which the test machine does not have, so this script does what
LeRobot's loader does: it parses meta/info.json and checks the version, builds the
Hugging Face `datasets` features from it, loads data/*/*.parquet with those features, and
reads meta/tasks.parquet with pandas, finding tasks by the index named "task". It also reads
meta/episodes/*/*.parquet. Then it checks the indices LeRobot relies on. Image features
(`dtype: image`) are decoded by `datasets.Image` as LeRobot does; with `--images NAME=FILE`
they must equal FILE's bytes (every row's pixels back to back), and their statistics must
match the decoded pixels. Usage: lerobot_check.py ROOT [--images NAME=FILE ...]. It prints
{"ok": true, ...} or raises.
"""
import glob
import json
import os
import sys

import datasets
import numpy as np
import pandas as pd

root = sys.argv[1]
expected_images = dict(a.split("=", 1) for a in sys.argv[3::2]) if "--images" in sys.argv else {}
info = json.load(open(os.path.join(root, "meta/info.json")))
assert info["codebase_version"] == "v3.0", info["codebase_version"]
for key in ("fps", "features", "total_episodes", "total_frames", "total_tasks", "data_path"):
    assert key in info, key

# LeRobot's mapping of its features to Hugging Face features.
features = {}
for name, ft in info["features"].items():
    assert "/" not in name, name
    if ft["dtype"] == "image":
        features[name] = datasets.Image()
        continue
    assert ft["dtype"] != "video", "this checker reads no videos"
    value = datasets.Value(ft["dtype"])
    features[name] = value if ft["shape"] == [1] else datasets.Sequence(value, length=ft["shape"][0])
features = datasets.Features(features)

files = sorted(glob.glob(os.path.join(root, "data/*/*.parquet")))
assert files, "no data files"
data = datasets.load_dataset("parquet", data_files=files, features=features, split="train")
assert len(data) == info["total_frames"], (len(data), info["total_frames"])
assert set(data.column_names) == set(features), data.column_names
table = data.with_format("numpy")[:]  # every column as a numpy array
index = table["index"]
assert (index == np.arange(len(data))).all(), "index is not 0..total_frames-1 in file order"
episode_index = table["episode_index"]
assert sorted(set(episode_index.tolist())) == list(range(info["total_episodes"]))

tasks = pd.read_parquet(os.path.join(root, "meta/tasks.parquet"))
assert tasks.index.name == "task", tasks.index.name
task = tasks.iloc[0].name
assert isinstance(task, str), type(task)
assert int(tasks.loc[task].task_index) == 0
assert len(tasks) == info["total_tasks"]

episode_files = sorted(glob.glob(os.path.join(root, "meta/episodes/*/*.parquet")))
episodes = datasets.load_dataset("parquet", data_files=episode_files, split="train")
assert len(episodes) == info["total_episodes"]
fps = info["fps"]
for ep in episodes:
    start, stop = ep["dataset_from_index"], ep["dataset_to_index"]
    assert stop - start == ep["length"], ep
    assert (episode_index[start:stop] == ep["episode_index"]).all()
    frames = table["frame_index"][start:stop]
    assert (frames == np.arange(ep["length"])).all()
    assert np.allclose(table["timestamp"][start:stop], frames / fps, atol=1e-6)
    assert ep["tasks"] == [task], ep["tasks"]
    path = info["data_path"].format(chunk_index=ep["data/chunk_index"], file_index=ep["data/file_index"])
    assert os.path.exists(os.path.join(root, path)), path

stats = json.load(open(os.path.join(root, "meta/stats.json")))
state = np.asarray(table["observation.state"], dtype=np.float64)
assert np.allclose(stats["observation.state"]["mean"], state.mean(0), atol=1e-6)
assert np.allclose(stats["observation.state"]["q90"], np.quantile(state, 0.9, axis=0), atol=1e-6)

images = {}
for name, ft in info["features"].items():
    if ft["dtype"] != "image":
        continue
    decoded = np.stack([np.asarray(data[i][name]) for i in range(len(data))])
    if decoded.ndim == 3:
        decoded = decoded[..., None]
    assert list(decoded.shape[1:]) == ft["shape"], (decoded.shape, ft["shape"])
    if name in expected_images:
        raw = np.fromfile(expected_images[name], dtype=np.uint8).reshape(decoded.shape)
        assert (raw == decoded).all(), f"{name}: decoded pixels differ from the recorded frames"
    s = stats[name]
    scaled = decoded.astype(np.float64) / 255.0
    per_channel = scaled.reshape(-1, decoded.shape[-1])
    assert np.array(s["mean"]).shape == (decoded.shape[-1], 1, 1), np.array(s["mean"]).shape
    assert np.allclose(np.array(s["mean"])[:, 0, 0], per_channel.mean(0), atol=1e-9)
    assert np.allclose(np.array(s["std"])[:, 0, 0], per_channel.std(0), atol=1e-9)
    assert np.allclose(np.array(s["q90"])[:, 0, 0], np.quantile(per_channel, 0.9, axis=0), atol=1e-9)
    assert s["count"] == [len(data)], s["count"]
    images[name] = list(decoded.shape)

print(json.dumps({
    "images": images,
    "ok": True,
    "task": task,
    "frames": len(data),
    "episodes": len(episodes),
    "fps": fps,
    "observation_state": state.tolist(),
    "action": np.asarray(table["action"]).tolist(),
    "reward": np.asarray(table["next.reward"]).tolist(),
    "done": np.asarray(table["next.done"]).tolist(),
    "success": np.asarray(table["next.success"]).tolist(),
    "lengths": [ep["length"] for ep in episodes],
}))
