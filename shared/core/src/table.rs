//! The `Table` port: Oratio's single-table item store (DynamoDB in AWS, SQLite embedded).
//!
//! Items are JSON objects. A few attribute names are reserved for keys: `pk`/`sk` (the
//! primary key), `gsi1pk`/`gsi1sk` and `gsi2pk`/`gsi2sk` (two sparse global secondary
//! indexes: an item is in an index only when it carries both of its keys) and
//! `expires_at` (epoch seconds; an expired item is absent for every operation, whether or
//! not the backend has deleted it yet). All key attributes are strings.
//!
//! The semantics every adapter must honour exactly live here, in one place: how a
//! condition is judged against an item, how an update changes one, what a cursor holds,
//! and which requests are invalid. The contract test suite checks each adapter against it.

use std::collections::HashSet;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1PK: &str = "gsi1pk";
pub const GSI1SK: &str = "gsi1sk";
pub const GSI2PK: &str = "gsi2pk";
pub const GSI2SK: &str = "gsi2sk";
pub const GSI3PK: &str = "gsi3pk";
pub const GSI3SK: &str = "gsi3sk";
pub const GSI4PK: &str = "gsi4pk";
pub const GSI4SK: &str = "gsi4sk";
pub const EXPIRES_AT: &str = "expires_at";

/// Largest item accepted, measured as its JSON encoding. Below DynamoDB's 400 KB so that
/// an item either adapter accepts, the other accepts too.
pub const MAX_ITEM_BYTES: usize = 380 * 1024;
/// Most operations in one transaction (DynamoDB's limit).
pub const MAX_TRANSACTION_OPS: usize = 100;

/// The attributes of one item.
pub type Attributes = Map<String, Value>;

/// Primary key of an item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self { pk: pk.into(), sk: sk.into() }
    }
}

/// The table's indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Index {
    Primary,
    Gsi1,
    Gsi2,
    Gsi3,
    Gsi4,
}

impl Index {
    /// The attribute names of this index's partition and sort keys.
    pub fn key_names(self) -> (&'static str, &'static str) {
        match self {
            Index::Primary => (PK, SK),
            Index::Gsi1 => (GSI1PK, GSI1SK),
            Index::Gsi2 => (GSI2PK, GSI2SK),
            Index::Gsi3 => (GSI3PK, GSI3SK),
            Index::Gsi4 => (GSI4PK, GSI4SK),
        }
    }

    /// The DynamoDB index name, `None` for the table itself.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Index::Primary => None,
            Index::Gsi1 => Some("gsi1"),
            Index::Gsi2 => Some("gsi2"),
            Index::Gsi3 => Some("gsi3"),
            Index::Gsi4 => Some("gsi4"),
        }
    }

    pub const SECONDARY: [Index; 4] = [Index::Gsi1, Index::Gsi2, Index::Gsi3, Index::Gsi4];
}

fn is_reserved(name: &str) -> bool {
    matches!(name, PK | SK | GSI1PK | GSI1SK | GSI2PK | GSI2SK | GSI3PK | GSI3SK | GSI4PK | GSI4SK | EXPIRES_AT)
}

/// One stored item: its attributes, keys included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Item(Attributes);

impl Item {
    pub fn new(key: Key) -> Self {
        let mut attrs = Map::new();
        attrs.insert(PK.into(), Value::String(key.pk));
        attrs.insert(SK.into(), Value::String(key.sk));
        Self(attrs)
    }

    /// An item holding the fields of `record` beside `key`. Fails if the record is not a
    /// JSON object or uses a reserved attribute name.
    pub fn from_record<T: Serialize>(key: Key, record: &T) -> Result<Self, TableError> {
        let Value::Object(fields) =
            serde_json::to_value(record).map_err(|e| TableError::Invalid(format!("record does not serialize: {e}")))?
        else {
            return Err(TableError::Invalid("a record must be a JSON object".into()));
        };
        let mut item = Self::new(key);
        for (name, value) in fields {
            if is_reserved(&name) {
                return Err(TableError::Invalid(format!("`{name}` is a reserved attribute")));
            }
            item.0.insert(name, value);
        }
        Ok(item)
    }

    /// Reads the item back as a record, ignoring the key attributes it does not name.
    pub fn record<T: DeserializeOwned>(&self) -> Result<T, TableError> {
        serde_json::from_value(Value::Object(self.0.clone()))
            .map_err(|e| TableError::Corrupt(format!("item {:?} does not decode: {e}", self.key())))
    }

    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.0.insert(name.to_owned(), value.into());
        self
    }

    /// Places the item in a secondary index.
    pub fn in_index(self, index: Index, pk: impl Into<String>, sk: impl Into<String>) -> Self {
        let (pk_name, sk_name) = index.key_names();
        self.with(pk_name, pk.into()).with(sk_name, sk.into())
    }

    /// Makes the item expire at `epoch_seconds`.
    pub fn expiring_at(self, epoch_seconds: i64) -> Self {
        self.with(EXPIRES_AT, epoch_seconds)
    }

    pub fn from_attributes(attrs: Attributes) -> Result<Self, TableError> {
        let item = Self(attrs);
        item.validate()?;
        Ok(item)
    }

    /// An item read back from a store, which only holds validated items: checks the key,
    /// not the rest (a full validation measures the item, which costs a serialization).
    pub fn from_stored(attrs: Attributes) -> Result<Self, TableError> {
        let item = Self(attrs);
        if item.str(PK).is_none_or(str::is_empty) || item.str(SK).is_none_or(str::is_empty) {
            return Err(TableError::Corrupt("a stored item without its key".into()));
        }
        Ok(item)
    }

    pub fn attributes(&self) -> &Attributes {
        &self.0
    }

    pub fn into_attributes(self) -> Attributes {
        self.0
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    pub fn i64(&self, name: &str) -> Option<i64> {
        self.0.get(name).and_then(Value::as_i64)
    }

    pub fn key(&self) -> Key {
        Key::new(self.str(PK).unwrap_or_default(), self.str(SK).unwrap_or_default())
    }

    /// This item's key in `index`, if it is in that index.
    pub fn index_key(&self, index: Index) -> Option<(&str, &str)> {
        let (pk, sk) = index.key_names();
        Some((self.str(pk)?, self.str(sk)?))
    }

    pub fn expires_at(&self) -> Option<i64> {
        self.i64(EXPIRES_AT)
    }

    /// Whether the item has expired at `now` (epoch seconds).
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at().is_some_and(|at| at <= now)
    }

    /// Checks the invariants every adapter relies on.
    pub fn validate(&self) -> Result<(), TableError> {
        for name in [PK, SK] {
            match self.0.get(name) {
                Some(Value::String(s)) if !s.is_empty() => {}
                _ => {
                    return Err(TableError::Invalid(format!("`{name}` must be a non-empty string")));
                }
            }
        }
        for name in [GSI1PK, GSI1SK, GSI2PK, GSI2SK] {
            match self.0.get(name) {
                None => {}
                Some(Value::String(s)) if !s.is_empty() => {}
                _ => {
                    return Err(TableError::Invalid(format!("`{name}` must be a non-empty string")));
                }
            }
        }
        if self.0.get(EXPIRES_AT).is_some_and(|v| !v.is_i64()) {
            return Err(TableError::Invalid("`expires_at` must be an integer".into()));
        }
        let size = serde_json::to_vec(&self.0).map(|v| v.len()).unwrap_or(usize::MAX);
        if size > MAX_ITEM_BYTES {
            return Err(TableError::Invalid(format!("item is {size} bytes; the limit is {MAX_ITEM_BYTES}")));
        }
        Ok(())
    }
}

/// A condition a write requires of the item as it stands (absent when it does not exist
/// or has expired).
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The item exists.
    Exists,
    /// The item does not exist.
    NotExists,
    AttributeExists(String),
    AttributeNotExists(String),
    /// The attribute exists and equals the value.
    Equals(String, Value),
    /// The attribute is missing or differs from the value.
    NotEquals(String, Value),
    /// The attribute exists, is of the value's type (number or string) and is smaller.
    LessThan(String, Value),
    /// The attribute exists, is of the value's type (number or string) and is greater.
    GreaterThan(String, Value),
    And(Vec<Condition>),
    Or(Vec<Condition>),
}

impl Condition {
    pub fn equals(name: &str, value: impl Into<Value>) -> Self {
        Self::Equals(name.into(), value.into())
    }

    /// Judges the condition against the live item (`None` when absent).
    pub fn holds(&self, item: Option<&Item>) -> bool {
        let attr = |name: &str| item.and_then(|i| i.get(name));
        match self {
            Condition::Exists => item.is_some(),
            Condition::NotExists => item.is_none(),
            Condition::AttributeExists(n) => attr(n).is_some(),
            Condition::AttributeNotExists(n) => attr(n).is_none(),
            Condition::Equals(n, v) => attr(n).is_some_and(|a| values_equal(a, v)),
            Condition::NotEquals(n, v) => !attr(n).is_some_and(|a| values_equal(a, v)),
            Condition::LessThan(n, v) => attr(n).and_then(|a| compare(a, v)) == Some(std::cmp::Ordering::Less),
            Condition::GreaterThan(n, v) => attr(n).and_then(|a| compare(a, v)) == Some(std::cmp::Ordering::Greater),
            Condition::And(all) => all.iter().all(|c| c.holds(item)),
            Condition::Or(any) => any.iter().any(|c| c.holds(item)),
        }
    }

    fn validate(&self) -> Result<(), TableError> {
        match self {
            Condition::LessThan(_, v) | Condition::GreaterThan(_, v) if !(v.is_number() || v.is_string()) => {
                Err(TableError::Invalid("ordering conditions compare numbers or strings".into()))
            }
            Condition::And(cs) | Condition::Or(cs) if cs.is_empty() => {
                Err(TableError::Invalid("an empty And/Or condition".into()))
            }
            Condition::And(cs) | Condition::Or(cs) => cs.iter().try_for_each(Condition::validate),
            _ => Ok(()),
        }
    }
}

/// Equality as DynamoDB sees it: numbers by value, everything else structurally.
fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        _ => None,
    }
}

/// Changes to an item. Applied to an absent item, it creates one (an upsert), as
/// DynamoDB's UpdateItem does; guard with [`Condition::Exists`] to forbid that.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Update {
    pub set: Vec<(String, Value)>,
    pub remove: Vec<String>,
    /// Numeric increments; a missing attribute counts as zero.
    pub add: Vec<(String, i64)>,
}

impl Update {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.set.push((name.into(), value.into()));
        self
    }

    pub fn remove(mut self, name: &str) -> Self {
        self.remove.push(name.into());
        self
    }

    pub fn add(mut self, name: &str, by: i64) -> Self {
        self.add.push((name.into(), by));
        self
    }

    pub fn validate(&self) -> Result<(), TableError> {
        if self.set.is_empty() && self.remove.is_empty() && self.add.is_empty() {
            return Err(TableError::Invalid("an update must change something".into()));
        }
        let mut seen = HashSet::new();
        let names = self.set.iter().map(|(n, _)| n).chain(&self.remove).chain(self.add.iter().map(|(n, _)| n));
        for name in names {
            if name == PK || name == SK {
                return Err(TableError::Invalid(format!("the key attribute `{name}` cannot be updated")));
            }
            if name.is_empty() {
                return Err(TableError::Invalid("an empty attribute name".into()));
            }
            if !seen.insert(name.as_str()) {
                return Err(TableError::Invalid(format!("`{name}` is named twice in one update")));
            }
        }
        // Reserved attributes keep their types, whichever adapter applies the update.
        for (name, value) in &self.set {
            let fits = match name.as_str() {
                GSI1PK | GSI1SK | GSI2PK | GSI2SK => value.as_str().is_some_and(|s| !s.is_empty()),
                EXPIRES_AT => value.is_i64(),
                _ => true,
            };
            if !fits {
                return Err(TableError::Invalid(format!("`{name}` has the wrong type")));
            }
        }
        if let Some((name, _)) = self.add.iter().find(|(n, _)| is_reserved(n) && n != EXPIRES_AT) {
            return Err(TableError::Invalid(format!("cannot add to the key attribute `{name}`")));
        }
        Ok(())
    }

    /// The item after this update, starting from the live item (or a new one at `key`).
    pub fn apply(&self, key: &Key, current: Option<&Item>) -> Result<Item, TableError> {
        let mut item = current.cloned().unwrap_or_else(|| Item::new(key.clone()));
        for (name, value) in &self.set {
            item.0.insert(name.clone(), value.clone());
        }
        for name in &self.remove {
            item.0.remove(name);
        }
        for (name, by) in &self.add {
            let now = match item.0.get(name) {
                None => 0,
                Some(v) => v
                    .as_i64()
                    .ok_or_else(|| TableError::Invalid(format!("cannot add to `{name}`: it is not an integer")))?,
            };
            let sum = now.checked_add(*by).ok_or_else(|| TableError::Invalid(format!("`{name}` would overflow")))?;
            item.0.insert(name.clone(), sum.into());
        }
        item.validate()?;
        Ok(item)
    }
}

/// A condition on the sort key of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum SortKey {
    Equals(String),
    BeginsWith(String),
    /// Inclusive at both ends.
    Between(String, String),
    LessThan(String),
    LessOrEqual(String),
    GreaterThan(String),
    GreaterOrEqual(String),
}

impl SortKey {
    pub fn matches(&self, sk: &str) -> bool {
        let sk = sk.as_bytes();
        match self {
            SortKey::Equals(v) => sk == v.as_bytes(),
            SortKey::BeginsWith(p) => sk.starts_with(p.as_bytes()),
            SortKey::Between(lo, hi) => sk >= lo.as_bytes() && sk <= hi.as_bytes(),
            SortKey::LessThan(v) => sk < v.as_bytes(),
            SortKey::LessOrEqual(v) => sk <= v.as_bytes(),
            SortKey::GreaterThan(v) => sk > v.as_bytes(),
            SortKey::GreaterOrEqual(v) => sk >= v.as_bytes(),
        }
    }
}

/// Items of one partition of an index, in sort-key order (byte order of UTF-8).
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub index: Index,
    pub partition: String,
    pub sort: Option<SortKey>,
    pub descending: bool,
    /// At most this many items in the page; `None` for all of them.
    pub limit: Option<usize>,
    pub cursor: Option<Cursor>,
}

impl Query {
    pub fn partition(index: Index, partition: impl Into<String>) -> Self {
        Self { index, partition: partition.into(), sort: None, descending: false, limit: None, cursor: None }
    }

    pub fn sort(mut self, sort: SortKey) -> Self {
        self.sort = Some(sort);
        self
    }

    pub fn descending(mut self) -> Self {
        self.descending = true;
        self
    }

    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    pub fn after(mut self, cursor: Option<Cursor>) -> Self {
        self.cursor = cursor;
        self
    }

    /// Checks the request and decodes its cursor, which must point into this partition.
    pub fn validate(&self) -> Result<Option<CursorKey>, TableError> {
        if self.partition.is_empty() {
            return Err(TableError::Invalid("a query needs a partition".into()));
        }
        if self.limit == Some(0) {
            return Err(TableError::Invalid("a query limit must be positive".into()));
        }
        let Some(cursor) = &self.cursor else {
            return Ok(None);
        };
        let key = cursor.decode()?;
        let in_partition = match self.index {
            Index::Primary => key.index.is_none() && key.table.pk == self.partition,
            _ => key.index.as_ref().is_some_and(|(pk, _)| *pk == self.partition),
        };
        if !in_partition {
            return Err(TableError::InvalidCursor);
        }
        Ok(Some(key))
    }
}

/// One page of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    /// Present exactly when more items follow.
    pub next: Option<Cursor>,
}

impl Page {
    /// The page's items read back as records.
    pub fn records<T: DeserializeOwned>(&self) -> Result<Vec<T>, TableError> {
        self.items.iter().map(Item::record).collect()
    }
}

/// Where a page ended: the table key of its last item and, for an index, the item's key
/// in that index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorKey {
    pub table: Key,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<(String, String)>,
}

impl CursorKey {
    pub fn of(item: &Item, index: Index) -> Self {
        let index = match index {
            Index::Primary => None,
            _ => item.index_key(index).map(|(p, s)| (p.to_owned(), s.to_owned())),
        };
        Self { table: item.key(), index }
    }
}

/// An opaque pagination token, safe to hand to API clients.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(String);

impl Cursor {
    pub fn encode(key: &CursorKey) -> Self {
        let json = serde_json::to_vec(key).expect("a cursor key always serializes");
        Self(URL_SAFE_NO_PAD.encode(json))
    }

    pub fn decode(&self) -> Result<CursorKey, TableError> {
        let bytes = URL_SAFE_NO_PAD.decode(&self.0).map_err(|_| TableError::InvalidCursor)?;
        serde_json::from_slice(&bytes).map_err(|_| TableError::InvalidCursor)
    }

    /// A cursor received from a client.
    pub fn from_client(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One write of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Put {
        item: Item,
        condition: Option<Condition>,
    },
    Update {
        key: Key,
        update: Update,
        condition: Option<Condition>,
    },
    Delete {
        key: Key,
        condition: Option<Condition>,
    },
    /// Writes nothing; fails the transaction unless the condition holds.
    Check {
        key: Key,
        condition: Condition,
    },
}

impl Write {
    pub fn key(&self) -> Key {
        match self {
            Write::Put { item, .. } => item.key(),
            Write::Update { key, .. } | Write::Delete { key, .. } | Write::Check { key, .. } => key.clone(),
        }
    }

    pub fn condition(&self) -> Option<&Condition> {
        match self {
            Write::Put { condition, .. } | Write::Update { condition, .. } | Write::Delete { condition, .. } => {
                condition.as_ref()
            }
            Write::Check { condition, .. } => Some(condition),
        }
    }

    pub fn validate(&self) -> Result<(), TableError> {
        match self {
            Write::Put { item, .. } => item.validate()?,
            Write::Update { key, update, .. } => {
                validate_key(key)?;
                update.validate()?;
            }
            Write::Delete { key, .. } | Write::Check { key, .. } => validate_key(key)?,
        }
        self.condition().map_or(Ok(()), Condition::validate)
    }
}

pub fn validate_key(key: &Key) -> Result<(), TableError> {
    if key.pk.is_empty() || key.sk.is_empty() {
        return Err(TableError::Invalid("keys must be non-empty".into()));
    }
    Ok(())
}

/// Checks a transaction: size, each write, and at most one write per item.
pub fn validate_transaction(writes: &[Write]) -> Result<(), TableError> {
    if writes.is_empty() || writes.len() > MAX_TRANSACTION_OPS {
        return Err(TableError::Invalid(format!("a transaction holds 1 to {MAX_TRANSACTION_OPS} writes")));
    }
    let mut keys = HashSet::new();
    for write in writes {
        write.validate()?;
        if !keys.insert(write.key()) {
            return Err(TableError::Invalid("a transaction writes each item at most once".into()));
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// A write's condition did not hold; in a transaction, `write` is the index of the
    /// first write whose condition failed, when the backend says.
    #[error("condition failed")]
    ConditionFailed { write: Option<usize> },
    #[error("invalid table request: {0}")]
    Invalid(String),
    #[error("invalid pagination cursor")]
    InvalidCursor,
    /// A transaction collided with another write; safe to retry.
    #[error("transaction conflict")]
    Conflict,
    /// Throttling or a transient backend failure; safe to retry.
    #[error("table temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("stored item is corrupt: {0}")]
    Corrupt(String),
    #[error("table backend failed")]
    Backend(#[source] anyhow::Error),
}

impl TableError {
    pub fn is_condition_failed(&self) -> bool {
        matches!(self, TableError::ConditionFailed { .. })
    }
}

/// The item store.
#[async_trait]
pub trait Table: Send + Sync {
    /// Reads one item; `None` if absent or expired. Strongly consistent.
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError>;

    /// Writes a whole item, replacing any that stands at its key.
    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError>;

    /// Changes an item (creating it if absent) and returns it as it now stands.
    async fn update(&self, key: &Key, update: Update, condition: Option<Condition>) -> Result<Item, TableError>;

    /// Removes an item; removing an absent item is not an error unless the condition says so.
    async fn delete(&self, key: &Key, condition: Option<Condition>) -> Result<(), TableError>;

    /// One page of a partition, in sort-key order.
    async fn query(&self, query: Query) -> Result<Page, TableError>;

    /// All writes or none. Fails with `ConditionFailed` if any condition does not hold.
    async fn transact(&self, writes: Vec<Write>) -> Result<(), TableError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item() -> Item {
        Item::new(Key::new("T#1", "A#1")).with("status", "active").with("n", 3)
    }

    #[test]
    fn conditions_treat_missing_attributes_like_dynamodb() {
        let i = item();
        assert!(Condition::equals("status", "active").holds(Some(&i)));
        assert!(!Condition::equals("nope", "active").holds(Some(&i)));
        assert!(Condition::NotEquals("nope".into(), json!(1)).holds(Some(&i)));
        assert!(Condition::NotEquals("nope".into(), json!(1)).holds(None));
        assert!(Condition::LessThan("n".into(), json!(4)).holds(Some(&i)));
        assert!(!Condition::LessThan("n".into(), json!("4")).holds(Some(&i)));
        assert!(Condition::NotExists.holds(None));
        assert!(!Condition::Exists.holds(None));
    }

    #[test]
    fn updates_refuse_key_changes_and_repeated_names() {
        assert!(Update::new().set(PK, "x").validate().is_err());
        assert!(Update::new().set("a", 1).remove("a").validate().is_err());
        assert!(Update::new().validate().is_err());
    }

    #[test]
    fn update_on_absent_item_starts_from_its_key() {
        let key = Key::new("T#1", "C#1");
        let after = Update::new().add("count", 2).apply(&key, None).unwrap();
        assert_eq!(after.key(), key);
        assert_eq!(after.i64("count"), Some(2));
    }

    #[test]
    fn cursors_from_another_partition_are_refused() {
        let other = Item::new(Key::new("T#2", "A#1"));
        let cursor = Cursor::encode(&CursorKey::of(&other, Index::Primary));
        let query = Query::partition(Index::Primary, "T#1").after(Some(cursor));
        assert!(matches!(query.validate(), Err(TableError::InvalidCursor)));
        let garbage = Query::partition(Index::Primary, "T#1").after(Some(Cursor::from_client("%%")));
        assert!(matches!(garbage.validate(), Err(TableError::InvalidCursor)));
    }

    #[test]
    fn records_cannot_smuggle_reserved_attributes() {
        let r = json!({"pk": "T#2"});
        assert!(Item::from_record(Key::new("a", "b"), &r).is_err());
    }
}
