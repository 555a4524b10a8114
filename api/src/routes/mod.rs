pub mod health;
pub mod uploads;
