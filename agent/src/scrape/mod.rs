//! Scraping: targets, the HTTP fetch, the one exposition parser, and the
//! per-target loop that turns bodies into samples.
//!
//! `target` resolves configured targets, `fetch` gets a body, `parse` reads
//! it, `ingest` applies target labels, relabeling, limits and staleness, and
//! `scrape_loop` runs that every interval; `manager` owns the loops.

pub mod fetch;
pub mod ingest;
pub mod manager;
pub mod metrics;
pub mod parse;
pub mod scrape_loop;
pub mod target;

pub use manager::{ScrapeManager, SelfScrape, StatusBoard, self_target};
pub use scrape_loop::{ScrapeError, TargetStatus};
pub use target::Target;
