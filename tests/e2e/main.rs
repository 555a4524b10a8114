//! End-to-end tests: one binary, one module per area.

mod cli;
mod foundation;
mod web;
