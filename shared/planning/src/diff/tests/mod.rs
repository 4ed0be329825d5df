//! One test per diff rule (anchors, regions, forks, transition changes, deleted
//! and new steps), on small hand-written scenarios.
//!
//! One file per concern; `fixtures` holds the helpers they share.

mod deleted;
mod edited;
mod fixtures;
mod forks;
mod inserted;
mod odd_graphs;
mod pairing;
mod regions;
