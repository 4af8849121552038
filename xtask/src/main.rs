//! `cargo xtask setup | demo [rlrt demo args...] | test [cargo test args...] | robot | layout`
//!
//! `setup` installs, once, what the build and the tests need from PyPI into `.deps/`
//! (ignored by git): MuJoCo's shared library from the `mujoco` wheel into `.deps/mujoco`
//! (the build links against it: `.cargo/config.toml` points `MUJOCO_DYNAMIC_LINK_DIR`
//! there), the Python packages the tests use into `.deps/python`, libtorch's CPU libraries
//! and headers from the `torch` wheel into `.deps/libtorch` (for the `tch` feature:
//! `.cargo/config.toml` points `LIBTORCH` there), and ROS 2 Jazzy's Python message packages
//! into `.deps/ros` (the tests' oracle for the `ros2` link). `demo` installs neither of the
//! last two and runs `rlrt demo`; `test` runs `setup` and then the workspace tests in release
//! mode, with the `tch` feature. `robot` builds the lean robot binary, stripped, and says what
//! it weighs and links; `layout` checks the crate rules of ARCHITECTURE.md (see `layout.rs`).

mod layout;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Python wheels the tests need, pinned to the versions the Rust crates pair with:
/// eclipse-zenoh for the Python robot driver, numpy for the peer of
/// `rlrt bench reward-program` (2.2 is the newest line that still supports Python 3.10),
/// rerun-sdk for the rerun viewer and command line (`rerun`, in `.deps/python/bin`) and the
/// dataframe API the rerun tests read recordings back with; it must match the `rerun` crate.
/// onnxruntime ships the libonnxruntime.so that ONNX policies load at run time (and is the
/// ONNX Runtime peer of `rlrt bench policy`).
const PYTHON_WHEELS: &[&str] = &[
    "eclipse-zenoh==1.10.2",
    "numpy==2.2.6",
    "rerun-sdk==0.36.3",
    "onnxruntime==1.23.2",
    "h5py==3.13.0",
    // Gymnasium's MuJoCo models (Hopper, Walker2d, HalfCheetah) for the sim, and the
    // MuJoCo Python bindings the Gymnasium conformance test runs them with.
    "gymnasium==1.4.0",
    "imageio==2.38.1",
    // Pillow's bicubic resize is the reference for CLIP preprocessing (tests/clip.rs).
    "pillow==13.0.0",
    "mujoco==3.17.0",
    // LeRobot's loader reads exports with Hugging Face datasets and pandas (tests/offline_rl.rs,
    // tests/python/lerobot_check.py); pyarrow already arrives with rerun-sdk.
    "datasets==4.8.5",
    "pandas==2.3.3",
    "pyarrow==26.0.1",
    // pandas accepts dateutil 4, but botocore in a system site-packages does not; 2.9 keeps
    // pip's resolver quiet.
    "python-dateutil==2.9.0.post0",
];

/// The MuJoCo wheel whose `libmujoco.so` the `mujoco-rs` crate links against. mujoco-rs
/// 7.0.0 targets MuJoCo 3.17.0 exactly and refuses any other version at run time.
const MUJOCO_WHEEL: &str = "mujoco==3.17.0";
const MUJOCO_LIBRARY: &str = "libmujoco.so.3.17.0";

fn root() -> PathBuf {
    // Read at run time: `cargo run` sets CARGO_MANIFEST_DIR to this checkout's xtask folder.
    // The value baked in at compile time can name another checkout: cargo reuses a fresh
    // artifact across checkouts that share a target directory.
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

fn pip_install(dir: &Path, extra: &[&str], wheels: &[&str]) -> Result<(), String> {
    eprintln!(
        "xtask: installing {} into {}",
        wheels.join(", "),
        dir.display()
    );
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--upgrade",
        ])
        .args(extra)
        .arg("--target")
        .arg(dir)
        .args(wheels)
        .status()
        .map_err(|e| format!("running python3 -m pip: {e} (is Python 3 with pip installed?)"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("pip install failed ({status}); is PyPI reachable?"))
    }
}

/// Runs `install` unless `dir/.installed` records that `wanted` is already there.
fn once(
    dir: &Path,
    wanted: &str,
    install: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    let marker = dir.join(".installed");
    if std::fs::read_to_string(&marker).is_ok_and(|s| s == wanted) {
        return Ok(());
    }
    install()?;
    std::fs::write(&marker, wanted).map_err(|e| format!("writing {}: {e}", marker.display()))
}

/// The torch wheel whose libtorch the `tch` crate (0.22, the one burn 0.21's dependency graph
/// allows) links against: it pairs with PyTorch 2.9.0 exactly. Only its CPU libraries and headers are kept; the CUDA half of the
/// wheel (and the several GB of CUDA libraries it depends on) is left out.
const TORCH_WHEEL: &str = "torch==2.9.0";
/// libtorch_cpu.so names the CUDA runtime and CUPTI (for its profiler) as dependencies even
/// when no GPU is used: these two small wheels provide them, at the versions torch 2.9.0
/// requires.
const TORCH_CPU_RUNTIME_WHEELS: &[&str] = &[
    "nvidia-cuda-runtime-cu12==12.8.90",
    "nvidia-cuda-cupti-cu12==12.8.90",
];

/// Unpacks a CPU-only libtorch from the torch wheel (argv[1]) and the CUDA runtime wheels'
/// folder (argv[2]) into argv[3]: `include/`, `lib/` with libtorch_cpu, libc10 and their
/// bundled libraries, and in place of the wheel's libtorch.so (which needs libtorch_cuda.so)
/// a linker script standing for libtorch_cpu.so.
const UNPACK_LIBTORCH: &str = r#"
import pathlib, shutil, sys, zipfile
wheel, runtime, out = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
gpu_only = ("cuda", "nvrtc", "nvshmem", "python", "global_deps")
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.endswith("/"):
            continue
        if name.startswith("torch/include/"):
            target = out / name[len("torch/"):]
        elif name.startswith("torch/lib/") and ".so" in name and name.count("/") == 2:
            base = name[len("torch/lib/"):]
            if base == "libtorch.so" or any(k in base for k in gpu_only):
                continue
            target = out / "lib" / base
        else:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with z.open(name) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        if "/lib/" in str(target):
            target.chmod(0o755)
found = set()
for lib in runtime.glob("nvidia/*/lib/*.so*"):
    if lib.name.startswith(("libcudart.so", "libcupti.so")):
        shutil.copy2(lib, out / "lib" / lib.name)
        found.add(lib.name.split(".so")[0])
if found != {"libcudart", "libcupti"}:
    sys.exit(f"the CUDA runtime wheels lack {sorted({'libcudart', 'libcupti'} - found)}")
if not (out / "lib" / "libtorch_cpu.so").is_file():
    sys.exit(f"{wheel} has no torch/lib/libtorch_cpu.so")
(out / "lib" / "libtorch.so").write_text(
    "/* rlrt: CPU-only stand-in for the wheel's libtorch.so, which needs libtorch_cuda.so */\n"
    "INPUT(libtorch_cpu.so)\n")
"#;

fn setup_libtorch() -> Result<(), String> {
    let libtorch = root().join(".deps/libtorch");
    let wanted = format!(
        "{TORCH_WHEEL}
{}",
        TORCH_CPU_RUNTIME_WHEELS.join(
            "
"
        )
    );
    once(&libtorch, &wanted, || {
        let download = root().join(".deps/libtorch-download");
        let _ = std::fs::remove_dir_all(&download);
        let _ = std::fs::remove_dir_all(&libtorch);
        std::fs::create_dir_all(&download)
            .map_err(|e| format!("creating {}: {e}", download.display()))?;
        eprintln!("xtask: downloading {TORCH_WHEEL} (libtorch's CPU libraries are kept)");
        let status = Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(["--no-deps", "--dest"])
            .arg(&download)
            .arg(TORCH_WHEEL)
            .status()
            .map_err(|e| format!("running python3 -m pip: {e}"))?;
        if !status.success() {
            return Err(format!("pip download {TORCH_WHEEL} failed ({status})"));
        }
        let runtime = download.join("runtime");
        pip_install(&runtime, &["--no-deps"], TORCH_CPU_RUNTIME_WHEELS)?;
        let wheel = std::fs::read_dir(&download)
            .map_err(|e| format!("reading {}: {e}", download.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
            .ok_or_else(|| format!("pip left no wheel in {}", download.display()))?;
        let status = Command::new("python3")
            .args(["-c", UNPACK_LIBTORCH])
            .arg(&wheel)
            .arg(&runtime)
            .arg(&libtorch)
            .status()
            .map_err(|e| format!("running python3: {e}"))?;
        if !status.success() {
            return Err(format!(
                "unpacking libtorch from {} failed",
                wheel.display()
            ));
        }
        let version = TORCH_WHEEL.trim_start_matches("torch==");
        std::fs::write(libtorch.join("build-version"), version)
            .map_err(|e| format!("writing {}/build-version: {e}", libtorch.display()))?;
        std::fs::remove_dir_all(&download)
            .map_err(|e| format!("removing {}: {e}", download.display()))
    })
}

/// ROS 2 Jazzy's Python client and the message packages rlrt's `ros2` link speaks, from
/// PyPI: the tests' oracle for the CDR of those messages (`rclpy.serialization`) and the
/// source of their type descriptions (`share/<pkg>/msg/<Type>.json`, with the RIHS01 hashes).
/// About 60 MB of downloads, and xxhash.
const ROS_WHEELS: &[&str] = &[
    "ros-rclpy[fastrtps]==7.1.6",
    "ros-std-msgs==5.3.6",
    "ros-sensor-msgs==5.3.6",
    "ros-trajectory-msgs==5.3.6",
    // XXH3 for the fake ROS 2 robot's check of rmw_zenoh GIDs (tests/python/ros2_robot.py).
    "xxhash==3.6.0",
];

/// Installs [`ROS_WHEELS`] into `.deps/ros` as a prefix (`lib/python3.X/site-packages`,
/// `lib/*.so`, `share/`): the wheels keep their libraries under `lib/`, which pip's
/// `--target` mode drops.
fn setup_ros() -> Result<(), String> {
    let ros = root().join(".deps/ros");
    once(&ros, &ROS_WHEELS.join("\n"), || {
        eprintln!(
            "xtask: installing ROS 2 Jazzy's message packages ({}) into {}",
            ROS_WHEELS.join(", "),
            ros.display()
        );
        std::fs::create_dir_all(&ros).map_err(|e| format!("creating {}: {e}", ros.display()))?;
        let status = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--upgrade",
                "--prefix",
            ])
            .arg(&ros)
            .args(ROS_WHEELS)
            .status()
            .map_err(|e| format!("running python3 -m pip: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "pip install of the ROS 2 wheels failed ({status}); is PyPI reachable?"
            ))
        }
    })
}

/// Everything: what the demo needs, libtorch for the tests of the `tch` feature, and ROS 2's
/// message packages for the tests of the `ros2` link.
fn setup() -> Result<(), String> {
    setup_base()?;
    setup_ros()?;
    setup_libtorch()
}

/// What the build without optional features and the demo need.
fn setup_base() -> Result<(), String> {
    let python = root().join(".deps/python");
    once(&python, &PYTHON_WHEELS.join("\n"), || {
        pip_install(&python, &[], PYTHON_WHEELS)
    })?;
    // Only the shared library is needed, not MuJoCo's Python dependencies.
    let mujoco = root().join(".deps/mujoco");
    once(&mujoco, MUJOCO_WHEEL, || {
        pip_install(&mujoco, &["--no-deps"], &[MUJOCO_WHEEL])?;
        let lib_dir = mujoco.join("mujoco");
        let link = lib_dir.join("libmujoco.so");
        let _ = std::fs::remove_file(&link);
        if !lib_dir.join(MUJOCO_LIBRARY).is_file() {
            return Err(format!(
                "{MUJOCO_WHEEL} did not ship {}/{MUJOCO_LIBRARY}",
                lib_dir.display()
            ));
        }
        std::os::unix::fs::symlink(MUJOCO_LIBRARY, &link)
            .map_err(|e| format!("linking {}: {e}", link.display()))
    })
}

/// The lean robot build: `rlrt` without MuJoCo, rerun, libhdf5, Arrow or Parquet, stripped
/// into `<target>/release/rlrt-robot`; says what it weighs and what it links, and puts it to
/// work (`check`, then `run` against a robot on the link: [`robot_smoke`]).
fn robot() -> Result<(), String> {
    eprintln!(
        "xtask: building the robot binary (rlrt --no-default-features --features robot) in \
         release mode"
    );
    cargo(
        &[
            "build",
            "--release",
            "--no-default-features",
            "--features",
            "robot",
            "--bin",
            "rlrt",
        ],
        &[],
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let built = target.join("release").join("rlrt");
    let shipped = target.join("release").join("rlrt-robot");
    std::fs::copy(&built, &shipped)
        .map_err(|e| format!("copying {} to {}: {e}", built.display(), shipped.display()))?;
    let status = Command::new("strip")
        .arg(&shipped)
        .status()
        .map_err(|e| format!("running strip (binutils): {e}"))?;
    if !status.success() {
        return Err(format!("strip {} failed ({status})", shipped.display()));
    }
    let bytes = std::fs::metadata(&shipped).map_or(0, |m| m.len());
    let ldd = Command::new("ldd")
        .arg(&shipped)
        .output()
        .map_err(|e| format!("running ldd: {e}"))?;
    let linked = String::from_utf8_lossy(&ldd.stdout);
    let libraries: Vec<&str> = linked
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for forbidden in ["libhdf5", "libmujoco", "libarrow", "libparquet", "libtorch"] {
        if libraries.iter().any(|l| l.starts_with(forbidden)) {
            return Err(format!(
                "{} links {forbidden}: the robot build must not",
                shipped.display()
            ));
        }
    }
    println!(
        "xtask: {} ({:.1} MB stripped), links {}",
        shipped.display(),
        bytes as f64 / 1e6,
        libraries.join(" ")
    );
    robot_smoke(&shipped)
}

/// The robot binary at work: it checks a shipped config, then runs that config's loop for
/// two seconds against a robot on the link (the Python driver of the tests, a zenoh peer
/// publishing states and following commands), and must end the run cleanly.
fn robot_smoke(binary: &Path) -> Result<(), String> {
    let config = root().join("hw-configs").join("reach-arm-joint-space.toml");
    let check = Command::new(binary)
        .arg("check")
        .arg(&config)
        .output()
        .map_err(|e| format!("running {} check: {e}", binary.display()))?;
    if !check.status.success() {
        return Err(format!(
            "{} check {} failed:\n{}",
            binary.display(),
            config.display(),
            String::from_utf8_lossy(&check.stderr)
        ));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("finding a free port: {e}"))?
        .port();
    let text = std::fs::read_to_string(&config)
        .map_err(|e| format!("reading {}: {e}", config.display()))?
        .replace(
            "key_prefix = \"rlrt/reach-arm\"",
            &format!("key_prefix = \"rlrt/robot-smoke\"\nlisten = [\"tcp/127.0.0.1:{port}\"]"),
        );
    let smoke = std::env::temp_dir().join(format!("rlrt-robot-smoke-{}.toml", std::process::id()));
    std::fs::write(&smoke, text).map_err(|e| format!("writing {}: {e}", smoke.display()))?;
    let mut driver = Command::new("python3")
        .env("PYTHONPATH", root().join(".deps").join("python"))
        .arg(root().join("tests").join("python").join("robot_driver.py"))
        .args(["--connect", &format!("tcp/127.0.0.1:{port}")])
        .args(["--prefix", "rlrt/robot-smoke", "--seconds", "30"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the Python robot driver: {e}"))?;
    let run = Command::new(binary)
        .args(["run", "--seconds", "2", "--wait-seconds", "20"])
        .arg(&smoke)
        .output();
    let _ = driver.kill();
    let _ = driver.wait();
    let _ = std::fs::remove_file(&smoke);
    let run = run.map_err(|e| format!("running {} run: {e}", binary.display()))?;
    if !run.status.success() {
        return Err(format!(
            "{} run against a robot on the link failed ({}):\n{}",
            binary.display(),
            run.status,
            String::from_utf8_lossy(&run.stderr)
        ));
    }
    println!(
        "xtask: the robot binary checked {} and ran it against a robot on the link:\n{}",
        config.display(),
        String::from_utf8_lossy(&run.stdout).trim_end()
    );
    Ok(())
}

fn cargo(args: &[&str], rest: &[String]) -> Result<(), String> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root())
        .args(args)
        .args(rest)
        .status()
        .map_err(|e| format!("running cargo {}: {e}", args.join(" ")))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo {} failed ({status})", args.join(" ")))
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("demo") => setup_base().and_then(|()| {
            eprintln!(
                "xtask: building rlrt in release mode, then running `rlrt demo` (from a fresh clone \
                 on a 2-core machine this took 17 minutes; later runs start in seconds)"
            );
            cargo(
                &["run", "--release", "--bin", "rlrt", "--", "demo"],
                &args[1..],
            )
        }),
        Some("test") => setup().and_then(|()| {
            eprintln!(
                "xtask: building and running every test in release mode with libtorch (on a 2-core \
                 machine, 12 minutes more than the demo the first time)"
            );
            cargo(
                &["test", "--workspace", "--release", "--features", "rlrt/tch"],
                &args[1..],
            )
        }),
        Some("robot") => robot(),
        Some("layout") => layout::check(&root()),
        _ => Err(
            "usage: cargo xtask setup | demo [rlrt demo arguments] | test [cargo test \
                  arguments] | robot | layout"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
