//! Sori: a speech-to-text service that measures what every transcription costs.

pub mod audio;
pub mod config;
pub mod engine;
pub mod model;
pub mod monitor;
