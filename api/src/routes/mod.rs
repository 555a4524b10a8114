pub mod files;
pub mod health;
pub mod links;
pub mod uploads;
pub mod web;
