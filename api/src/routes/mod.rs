pub mod companion;
pub mod files;
pub mod health;
pub mod links;
pub mod listing;
pub mod uploads;
pub mod web;
