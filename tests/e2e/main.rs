//! End-to-end tests: one binary, one module per area.

mod auth;
mod cli;
mod downloads;
mod foundation;
mod idempotency;
mod lifecycle;
mod limits;
mod openapi;
mod presigned;
mod validation;
mod web;
mod worker;
