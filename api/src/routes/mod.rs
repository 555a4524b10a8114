pub mod files;
pub mod health;
pub mod uploads;
pub mod web;
