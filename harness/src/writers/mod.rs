//! What runs in a trial: the built-in workload's writer processes, a scenario's choreography of
//! processes, or a user's own program.

pub mod program;
pub mod scenario;
pub mod workload;
