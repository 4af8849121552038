//! A ROS 2 node on a zenoh session, as rmw_zenoh makes one: a liveliness token for the node
//! and one for each publisher and subscription (so `ros2 node list` and `ros2 topic list`
//! show it), ids from one counter per session, and publishers that put rmw_zenoh's attachment
//! on every sample.

use std::sync::atomic::{AtomicU64, Ordering};

use zenoh::{Session, Wait};

use super::wire::{self, Attachment, EntityKind, MsgType, NodeName, Qos};
use crate::config::Ros2Config;
use crate::link::error::LinkError;

/// The node; its tokens go when it is dropped.
pub struct Node {
    session: Session,
    name: NodeName,
    next_id: AtomicU64,
    _token: zenoh::liveliness::LivelinessToken,
}

impl Node {
    /// Declares node `config.node_name` in `config.namespace` on `session`.
    pub fn new(session: Session, config: &Ros2Config) -> Result<Self, LinkError> {
        let next_id = AtomicU64::new(0);
        let name = NodeName {
            domain: config.domain_id,
            zid: session.zid().to_string(),
            id: next_id.fetch_add(1, Ordering::Relaxed),
            enclave: "/".into(),
            namespace: config.namespace.clone(),
            name: config.node_name.clone(),
        };
        let key = name.node_token();
        let token = session
            .liveliness()
            .declare_token(&key)
            .wait()
            .map_err(|e| LinkError::declare("the ROS 2 node token", &key, e))?;
        Ok(Self {
            session,
            name,
            next_id,
            _token: token,
        })
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Declares the token of a subscription to `topic` (fully qualified) and returns it with
    /// the topic's data key. The caller subscribes to the data itself.
    pub fn subscription(
        &self,
        topic: &str,
        ty: &MsgType,
        qos: &Qos,
    ) -> Result<(String, zenoh::liveliness::LivelinessToken), LinkError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let token = self
            .name
            .endpoint_token(id, EntityKind::Subscription, topic, ty, qos);
        let declared = self
            .session
            .liveliness()
            .declare_token(&token)
            .wait()
            .map_err(|e| LinkError::declare("a ROS 2 subscription token", &token, e))?;
        Ok((wire::data_key(self.name.domain, topic, ty), declared))
    }

    /// Declares a publisher on `topic` (fully qualified) with its token.
    pub fn publisher(&self, topic: &str, ty: &MsgType, qos: &Qos) -> Result<Publisher, LinkError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let token = self
            .name
            .endpoint_token(id, EntityKind::Publisher, topic, ty, qos);
        let gid = wire::gid(&token);
        let key = wire::data_key(self.name.domain, topic, ty);
        // Declared once, so that samples carry a short numeric id instead of the ~110-byte
        // key (rmw_zenoh's keys are long: topic, type and hash).
        let declared = self
            .session
            .declare_keyexpr(key.clone())
            .wait()
            .map_err(|e| LinkError::declare("a ROS 2 key expression", &key, e))?;
        let publisher = self
            .session
            .declare_publisher(declared)
            .reliability(if qos.reliable {
                zenoh::qos::Reliability::Reliable
            } else {
                zenoh::qos::Reliability::BestEffort
            })
            // As rmw_zenoh does for keep-last: drop rather than block when congested.
            .congestion_control(zenoh::qos::CongestionControl::Drop)
            // Sent at once, not held for batching: a command is late the moment it waits.
            .express(true)
            .wait()
            .map_err(|e| LinkError::declare("a ROS 2 publisher", &key, e))?;
        let declared = self
            .session
            .liveliness()
            .declare_token(&token)
            .wait()
            .map_err(|e| LinkError::declare("a ROS 2 publisher token", &token, e))?;
        Ok(Publisher {
            publisher,
            key,
            gid,
            sequence_number: 0,
            _token: declared,
        })
    }
}

/// A publisher that numbers its samples from 1 and attaches what rmw_zenoh expects.
pub struct Publisher {
    publisher: zenoh::pubsub::Publisher<'static>,
    key: String,
    gid: [u8; 16],
    sequence_number: i64,
    _token: zenoh::liveliness::LivelinessToken,
}

impl Publisher {
    /// Puts one CDR payload (encapsulation header included).
    pub fn put(&mut self, payload: &[u8]) -> zenoh::Result<()> {
        self.sequence_number += 1;
        let attachment = Attachment {
            sequence_number: self.sequence_number,
            source_timestamp_ns: wire::system_time_ns(),
            gid: self.gid,
        }
        .encode();
        self.publisher
            .put(payload)
            .attachment(&attachment[..])
            .wait()
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn gid(&self) -> [u8; 16] {
        self.gid
    }
}
