//! caguard: keeps an MSP's Conditional Access lockdown in place across its own
//! tenant and every GDAP customer tenant.
//!
//! Data flows one way: **observe → plan → apply → record/alert**.
//! See `docs/architecture.md` for which module owns each step.

pub mod graph;
pub mod model;
