//! The lab's scenarios, run for real, with evidence.
#![forbid(unsafe_code)]

pub mod proxy;
pub mod report;
