//! The end-to-end harness: the real API router on a random port, a fresh Postgres database and a fresh
//! LocalStack bucket per test. `make test` starts Postgres and LocalStack and exports where they are.

mod app;
mod chaos;
pub mod contract;
mod http;
mod teardown;

pub use app::{Sibling, TestApp, TestEnv};
pub use chaos::{ChaosProxy, Fault, Traffic};
pub use http::{ChunkUrl, random_bytes, sha256_hex};

/// A binary of this workspace (`api`, `worker`, `upl`), built by `make test` before the suite runs.
pub fn workspace_bin(name: &str) -> std::path::PathBuf {
    // Test executables live in target/<profile>/deps; binaries one level up.
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: build it with `cargo build --bins` (make test does)", path.display());
    path
}
