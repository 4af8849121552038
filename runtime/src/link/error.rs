//! Why a link could not be set up or used.

/// Why the link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("zenoh configuration key {key}")]
    Config {
        key: String,
        #[source]
        source: zenoh::Error,
    },
    #[error("opening the zenoh session")]
    Open(#[source] zenoh::Error),
    #[error("declaring {what} on {key}")]
    Declare {
        what: &'static str,
        key: String,
        #[source]
        source: zenoh::Error,
    },
    #[error("starting a link thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("querying {key}: {problem}")]
    Query {
        key: String,
        problem: String,
        #[source]
        source: Option<zenoh::Error>,
    },
    #[error("publishing")]
    Publish(#[source] zenoh::Error),
}

impl LinkError {
    /// A failed zenoh declaration (subscriber, publisher, token) of `what` on `key`.
    pub fn declare(what: &'static str, key: &str, source: zenoh::Error) -> Self {
        Self::Declare {
            what,
            key: key.to_owned(),
            source,
        }
    }
}
