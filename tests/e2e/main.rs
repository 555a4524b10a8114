//! End-to-end tests: one binary, one module per area.

mod auth;
mod chaos;
mod cli;
mod completion;
mod contract;
mod deploy;
mod downloads;
mod faults;
mod foundation;
mod idempotency;
mod lifecycle;
mod limits;
mod links;
mod listing;
mod openapi;
mod origin;
mod presigned;
mod s3_settings;
mod server;
mod teardown;
mod validation;
mod web;
mod webhooks;
mod worker;
