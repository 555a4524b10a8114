pub mod health;
pub mod uploads;
pub mod web;
