//! End-to-end tests: one binary, one module per area.

mod cli;
mod downloads;
mod foundation;
mod lifecycle;
mod links;
mod openapi;
mod origin;
mod presigned;
mod server;
mod validation;
mod web;
mod worker;
