//! Open WebSocket connections, remembered in the table so that any Lambda (or the
//! embedded platform after a restart) knows who is listening.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::ConnectionId;
use crate::table::{Condition, Item, Key, Table, TableError};
use crate::time::{now, now_epoch};

/// API Gateway closes every WebSocket after two hours; a record outlives that a little.
pub const CONNECTION_TTL_SECS: i64 = 2 * 3600 + 300;

/// Which socket a connection came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Dashboard,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub connection_id: ConnectionId,
    pub channel: Channel,
    pub connected_at: DateTime<Utc>,
}

fn key(id: &ConnectionId) -> Key {
    Key::new(format!("CONN#{id}"), "CONN")
}

/// Records a new connection. A connection id is used once.
pub async fn open(table: &dyn Table, connection_id: ConnectionId, channel: Channel) -> Result<Connection, TableError> {
    let connection = Connection { connection_id, channel, connected_at: now() };
    let item =
        Item::from_record(key(&connection.connection_id), &connection)?.expiring_at(now_epoch() + CONNECTION_TTL_SECS);
    table.put(item, Some(Condition::NotExists)).await?;
    Ok(connection)
}

pub async fn find(table: &dyn Table, id: &ConnectionId) -> Result<Option<Connection>, TableError> {
    table.get(&key(id)).await?.map(|item| item.record()).transpose()
}

/// Forgets a connection; forgetting an unknown one is not an error.
pub async fn close(table: &dyn Table, id: &ConnectionId) -> Result<(), TableError> {
    table.delete(&key(id), None).await
}
