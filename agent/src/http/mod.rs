//! The one HTTP client setup (hyper + rustls) shared by scraping and remote write.
