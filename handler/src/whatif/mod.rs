//! What If: caguard's own Conditional Access evaluator ([`eval`]), Graph's
//! `conditionalAccess/evaluate` ([`graph`]), and the checks before risky
//! writes that compare the two ([`preflight`]).

pub mod eval;
pub mod graph;
pub mod preflight;

pub use eval::{Answer, Identity, Reason, SignIn, Target, Verdict, evaluate, parse_request, response_value};
pub use preflight::Check;
