//! Open WebSocket connections, remembered in the table so that any Lambda (or the
//! embedded platform after a restart) knows who is listening. Layout: `CONN#<id>` /
//! `CONN` (the connection, found from API Gateway's id) and `TENANT#<t>` / `CONN#<id>`
//! (the tenant's dashboards, for broadcasting).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::identity::UserId;
use crate::ids::{ConnectionId, TenantId};
use crate::table::{Condition, Index, Item, Key, Query, SortKey, Table, TableError, Write};
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
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub connected_at: DateTime<Utc>,
}

fn key(id: &ConnectionId) -> Key {
    Key::new(format!("CONN#{id}"), "CONN")
}

fn tenant_key(tenant: &TenantId, id: &ConnectionId) -> Key {
    Key::new(format!("TENANT#{tenant}"), format!("CONN#{id}"))
}

/// Records a new connection of a tenant's user. A connection id is used once.
pub async fn open(
    table: &dyn Table,
    connection_id: ConnectionId,
    channel: Channel,
    tenant_id: TenantId,
    user_id: UserId,
) -> Result<Connection, TableError> {
    let connection = Connection { connection_id, channel, tenant_id, user_id, connected_at: now() };
    let expires = now_epoch() + CONNECTION_TTL_SECS;
    let id = &connection.connection_id;
    table
        .transact(vec![
            Write::Put {
                item: Item::from_record(key(id), &connection)?.expiring_at(expires),
                condition: Some(Condition::NotExists),
            },
            Write::Put {
                item: Item::from_record(tenant_key(&connection.tenant_id, id), &connection)?.expiring_at(expires),
                condition: Some(Condition::NotExists),
            },
        ])
        .await?;
    Ok(connection)
}

pub async fn find(table: &dyn Table, id: &ConnectionId) -> Result<Option<Connection>, TableError> {
    table.get(&key(id)).await?.map(|item| item.record()).transpose()
}

/// The tenant's open connections.
pub async fn of_tenant(table: &dyn Table, tenant: &TenantId) -> Result<Vec<Connection>, TableError> {
    let query = Query::partition(Index::Primary, format!("TENANT#{tenant}")).sort(SortKey::BeginsWith("CONN#".into()));
    table.query(query).await?.records()
}

/// Forgets a connection; forgetting an unknown one is not an error.
pub async fn close(table: &dyn Table, id: &ConnectionId) -> Result<(), TableError> {
    let Some(connection) = find(table, id).await? else { return Ok(()) };
    table
        .transact(vec![
            Write::Delete { key: key(id), condition: None },
            Write::Delete { key: tenant_key(&connection.tenant_id, id), condition: None },
        ])
        .await
}
