//! The end-to-end tests, one module per area, in one test binary.
//!
//! One binary rather than one per file: each linked test binary carries the
//! whole product and simulator, and ~35 of them filled a CI disk. The
//! packaging test (`package.rs`) and the browser test (`ui.rs`) stay apart:
//! they run a cargo build and Chromium, and should not share a run with tests
//! that time an answer.

mod accounts;
mod alert_delivery;
mod alerts;
mod body_timeout;
mod cipp;
mod cipp_auth;
mod cipp_timer;
mod direct;
mod discovery;
mod doctor;
mod emergency;
mod engine;
mod fidelity;
mod fixtures_sync;
mod graph_client;
mod hardening;
mod infra;
mod ledger;
mod lockdowns;
mod lockout;
mod notifications;
mod owned_whole;
mod partner_center;
mod pause;
mod queue;
mod real_policies;
mod rollout;
mod scale;
mod simulator;
mod table;
mod tug_of_war;
mod uninstall;
mod watch;
mod whatif;
