//! tracing-subscriber setup: JSON or text lines, a level from config or
//! `RUST_LOG`, changeable at run time (config reload) through [`LogHandle`].

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::config::LogFormat;

/// Logging could not be set up or changed.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The level directive does not parse.
    #[error("logging.level {level:?} is not a valid filter: {source}")]
    Filter {
        /// The directive given.
        level: String,
        /// Why it was refused.
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was already installed.
    #[error("logging is already initialised")]
    AlreadyInitialised,
    /// The reload handle's subscriber is gone.
    #[error("cannot change the log level: {0}")]
    Reload(#[from] reload::Error),
}

/// Changes the log filter of the running agent.
#[derive(Clone)]
pub struct LogHandle {
    handle: reload::Handle<EnvFilter, Registry>,
}

impl LogHandle {
    /// Replaces the filter, e.g. after a config reload.
    pub fn set_level(&self, level: &str) -> Result<(), LoggingError> {
        let filter = parse_filter(level)?;
        self.handle.reload(filter)?;
        Ok(())
    }
}

fn parse_filter(level: &str) -> Result<EnvFilter, LoggingError> {
    EnvFilter::try_new(level).map_err(|source| LoggingError::Filter {
        level: level.to_owned(),
        source,
    })
}

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `level`
/// so a developer can turn on debug output without editing the config.
pub fn init_logging(level: &str, format: LogFormat) -> Result<LogHandle, LoggingError> {
    let directive = std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_owned());
    let (filter, handle) = reload::Layer::new(parse_filter(&directive)?);
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
    };
    result.map_err(|_| LoggingError::AlreadyInitialised)?;
    Ok(LogHandle { handle })
}
