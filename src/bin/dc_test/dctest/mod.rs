//! dc_test: random operations against a session cache, every answer checked
//! against a model of what the cache must hold, with throughput and latency
//! figures at the end. The `dc_test` binary is a shell over this module.

pub mod model;
pub mod options;
pub mod rng;
mod run;

pub use options::{parse, USAGE};
pub use run::{run, RunError};
