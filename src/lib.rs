//! Sori: a speech-to-text service that measures what every transcription costs.

pub mod audio;
pub mod batch;
pub mod cli;
pub mod config;
pub mod crash_point;
pub mod engine;
pub mod error;
pub mod formats;
pub mod http;
pub mod live;
pub mod model;
pub mod models;
pub mod monitor;
pub mod rounding;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod trace_context;
pub mod transcription;
pub mod vad;
pub mod worker;

pub use http::{app, AppState, HttpLimits};
