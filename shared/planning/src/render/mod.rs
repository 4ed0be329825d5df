//! Human renderings of a plan: a terminal review and a Mermaid flowchart. Pure string
//! building, so the CLI stays a thin shell and the formats are unit-tested here.
//!
//! The review ([`text`]) is built section by section (`review` drives `anchors`,
//! `edited` and `regions`, all on the helpers of `labels`); the flowchart
//! ([`mermaid`]) stands alone.

mod anchors;
mod edited;
mod flowchart;
mod labels;
mod regions;
mod review;

#[cfg(test)]
mod tests;

pub use flowchart::mermaid;
pub use review::text;
