//! The engine's policies as pure functions: which compaction to run next,
//! which versions a flush or compaction keeps, when a writer waits, and
//! how long a background thread pauses after a failure, and which blob
//! files a compaction empties.
//!
//! A policy here decides from a snapshot of the state it is given (file
//! shapes, read points, counters, the time passed) and returns a decision;
//! acting on it (locks, files, sleeping) stays with the engine. Being pure,
//! each policy is pinned by data-driven test files (`testdata/*.txt`,
//! input, command and expected decision, in the style of Pebble's) and a
//! change of policy shows as a diff of those files.

pub(crate) mod backoff;
pub(crate) mod blob;
pub(crate) mod compaction;
pub(crate) mod gc;
pub(crate) mod split;
pub(crate) mod stall;

#[cfg(test)]
mod datadriven;
