//! What runs in a trial: the built-in workload's writer processes, a scenario's choreography of
//! processes, a user's own program, or `torture hunt`'s generated programs (run as exec programs).

pub mod builtin;
pub mod hunt;
pub mod program;
pub mod scenario;
pub mod workload;
