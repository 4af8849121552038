//! Where the files `cargo xtask setup` installs into `.deps/` are found at run time: under
//! the working directory or any folder above it, then under the executable's folder or any
//! folder above it (so `cargo run` from the checkout and a binary inside it both work).

use std::path::{Path, PathBuf};

/// The folders to look in for `.deps/...`, nearest first.
pub fn search_roots() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    roots
}
