//! The `Push` contract, with a peer that plays the client side of each connection.

use std::sync::Arc;

use async_trait::async_trait;
use oratio_core::ids::ConnectionId;
use oratio_core::push::{MAX_FRAME_BYTES, Push, PushError};

/// The adapter under test and the far end of its connections.
#[async_trait]
pub trait PushPeer: Send + Sync {
    fn push(&self) -> Arc<dyn Push>;
    /// Opens a connection the adapter can reach.
    async fn connect(&self, id: &ConnectionId);
    /// What the connection has received so far.
    async fn received(&self, id: &ConnectionId) -> Vec<String>;
    async fn is_open(&self, id: &ConnectionId) -> bool;
}

type Subject = Arc<dyn PushPeer>;

fn connection(id: &str) -> ConnectionId {
    id.parse().expect("a connection id")
}

pub async fn messages_reach_their_connection_in_order(peer: Subject) {
    let (a, b) = (connection("Abc123Def456Gh="), connection("Zyx987Wvu654Ts="));
    peer.connect(&a).await;
    peer.connect(&b).await;
    for n in 0..5 {
        peer.push().send(&a, &format!("{{\"n\":{n}}}")).await.expect("send");
    }
    peer.push().send(&b, "for b").await.expect("send");
    let expected: Vec<String> = (0..5).map(|n| format!("{{\"n\":{n}}}")).collect();
    assert_eq!(peer.received(&a).await, expected);
    assert_eq!(peer.received(&b).await, ["for b"]);
}

pub async fn a_closed_or_unknown_connection_is_gone(peer: Subject) {
    let a = connection("Abc123Def456Gh=");
    peer.connect(&a).await;
    peer.push().close(&a).await.expect("close");
    assert!(!peer.is_open(&a).await);
    let sent = peer.push().send(&a, "late").await;
    assert!(matches!(sent, Err(PushError::Gone)), "{sent:?}");
    let sent = peer.push().send(&connection("Never000Seen00="), "hello").await;
    assert!(matches!(sent, Err(PushError::Gone)), "{sent:?}");
}

pub async fn frames_over_the_limit_are_refused_before_sending(peer: Subject) {
    let a = connection("Abc123Def456Gh=");
    peer.connect(&a).await;
    let sent = peer.push().send(&a, &"x".repeat(MAX_FRAME_BYTES + 1)).await;
    assert!(matches!(sent, Err(PushError::TooLarge(_))), "{sent:?}");
    peer.push().send(&a, &"x".repeat(MAX_FRAME_BYTES)).await.expect("a frame at the limit");
    assert_eq!(peer.received(&a).await.len(), 1);
}

#[macro_export]
macro_rules! push_contract {
    ($factory:path) => {
        $crate::contract_cases!(
            $factory,
            push,
            [
                messages_reach_their_connection_in_order,
                a_closed_or_unknown_connection_is_gone,
                frames_over_the_limit_are_refused_before_sending,
            ]
        );
    };
}
