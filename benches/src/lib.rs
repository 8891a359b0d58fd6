//! Benchmark support for herd: the fixtures every suite shares, so that herd and its
//! peers see exactly the same inputs, and the report tool that turns criterion's
//! estimates into `benches/RESULTS.md`.
//!
//! - [`fixtures`]: label sets, observation values and the encode workload.
//! - [`report`]: reading `target/criterion`, checking targets, rendering Markdown.
//! - [`scrape`]: the multiprocess scrape comparison with Python's and Ruby's clients
//!   (`scrape-compare`), its result line and scaling curves.
//! - [`churn`]: the scrape cost before and after 2,000 short-lived worker processes
//!   (`scrape-compare --churn`).
//!
//! Run everything with `bash benches/run.sh`. A new suite (mmap scrape, middleware,
//! statsd) adds its groups to [`report::GROUPS`] and any targets to
//! [`report::TARGETS`] (or, for a cost measured against a bare baseline, to
//! [`report::ADDED_COST_TARGETS`]); the rest of the report follows.

pub mod churn;
pub mod fixtures;
pub mod prefork_memory;
pub mod report;
pub mod scrape;
