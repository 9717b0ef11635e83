//! What If: caguard's own Conditional Access evaluator ([`eval`]), and the checks
//! that compare it with Graph's `conditionalAccess/evaluate`.

pub mod eval;

pub use eval::{Answer, Identity, Reason, SignIn, Target, Verdict, evaluate, parse_request, response_value};
