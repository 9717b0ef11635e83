//! caguard: keeps an MSP's Conditional Access lockdown in place across its own
//! tenant and every GDAP customer tenant.
//!
//! Data flows one way: **observe → plan → apply → record/alert**.
//! See `docs/architecture.md` for which module owns each step.

// Graph errors carry tenant, URL, status, code and request id by value: they
// are rare, and a sweep's report is clearer for having them whole.
#![allow(clippy::result_large_err)]

pub mod alert;
pub mod apply;
pub mod approval;
pub mod audit;
pub mod beta;
pub mod cipp;
pub mod cli;
pub mod config;
pub mod demo;
pub mod doctor;
pub mod emergency;
pub mod functions;
pub mod graph;
pub mod logging;
pub mod model;
pub mod notify;
pub mod observe;
pub mod own;
pub mod owned;
pub mod partner;
pub mod pause;
pub mod plan;
pub mod report;
pub mod rollout;
pub mod secrets;
pub mod storage;
pub mod store;
pub mod sweep;
pub mod telemetry;
pub mod tug;
pub mod uninstall;
pub mod watch;
pub mod whatif;
