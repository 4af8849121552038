// The rlrt binary and tests link libmujoco.so (through rlrt-sim): an rpath to the folder
// the build linked against lets them run without LD_LIBRARY_PATH.
fn main() {
    println!("cargo:rerun-if-env-changed=MUJOCO_DYNAMIC_LINK_DIR");
    if let Ok(dir) = std::env::var("MUJOCO_DYNAMIC_LINK_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
