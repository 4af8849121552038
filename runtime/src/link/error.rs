//! Why a link could not be set up or used.

/// Why the link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("zenoh configuration key {key}: {message}")]
    Config { key: String, message: String },
    #[error("opening the zenoh session: {0}")]
    Open(String),
    #[error("declaring {what} on {key}: {message}")]
    Declare {
        what: &'static str,
        key: String,
        message: String,
    },
    #[error("starting a link thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("querying {key}: {message}")]
    Query { key: String, message: String },
    #[error("publishing: {0}")]
    Publish(String),
}

impl LinkError {
    /// A failed zenoh declaration (subscriber, publisher, token) of `what` on `key`.
    pub fn declare(what: &'static str, key: &str, e: impl std::fmt::Display) -> Self {
        Self::Declare {
            what,
            key: key.to_owned(),
            message: e.to_string(),
        }
    }
}
