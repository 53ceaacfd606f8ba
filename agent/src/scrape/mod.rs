//! Scraping: targets, the HTTP fetch, the one exposition parser, and the per-target loop.
pub mod parse;
