//! The engine's policies as pure functions of a snapshot of its state.

pub(crate) mod backoff;
pub(crate) mod gc;
pub(crate) mod stall;
