//! The resumable-upload domain shared by the `api` and `worker` binaries.

pub mod config;
pub mod db;
pub mod domain;
pub mod error_code;
pub mod repository;
pub mod service;
pub mod storage;
pub mod telemetry;
pub mod webhooks;
