//! Background jobs of the resumable upload service.

pub mod config;
