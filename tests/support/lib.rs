//! The end-to-end harness: the real API router on a random port, a fresh Postgres database and a fresh
//! LocalStack bucket per test. `make test` starts Postgres and LocalStack and exports where they are.

mod app;
mod http;

pub use app::{TestApp, TestEnv};
pub use http::{ChunkUrl, random_bytes, sha256_hex};
