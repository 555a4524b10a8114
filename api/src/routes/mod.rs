pub mod companion;
pub mod files;
pub mod health;
pub mod links;
pub mod listing;
pub mod metrics;
pub mod uploads;
pub mod web;
