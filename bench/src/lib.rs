//! `make bench`: this service measured beside Uppy Companion, nginx and direct S3 by one load generator.

pub mod api_client;
pub mod companion;
pub mod http;
pub mod jwt;
pub mod load;
pub mod procstat;
pub mod report;
pub mod s3;
pub mod scenarios;
pub mod transfer;
