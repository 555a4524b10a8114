//! The worker's configuration: the shared sections plus its own schedule.

use clap::Parser;
use uploads::config::{DatabaseConfig, LogConfig, S3Config, UploadPolicy};

#[derive(Debug, Clone, Parser)]
#[command(name = "worker", about = "Resumable upload service: background jobs")]
pub struct WorkerConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub s3: S3Config,
    #[command(flatten)]
    pub policy: UploadPolicy,
    #[command(flatten)]
    pub log: LogConfig,
}
