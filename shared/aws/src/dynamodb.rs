//! `Table` on DynamoDB: the single-table design with two sparse GSIs and TTL.
//!
//! DynamoDB deletes expired items lazily (up to days later), so this adapter makes them
//! absent itself: reads skip them, conditions treat them as missing, and an update or
//! transaction that meets one removes it first and tries again. Pages are filled to
//! their limit and carry a cursor exactly when more items follow, as in the embedded
//! adapter.

use std::collections::HashMap;

use anyhow::anyhow;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, Put, ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem,
    Update as DynamoUpdate,
};
use oratio_core::health::HealthCheck;
use oratio_core::table::{
    Condition, Cursor, CursorKey, EXPIRES_AT, Index, Item, Key, PK, Page, Query, SK, SortKey, Table, TableError,
    Update, Write, validate_key, validate_transaction,
};
use oratio_core::time::now_epoch;
use serde_json::{Map, Number, Value};

/// How often an update or transaction retries after clearing expired items in its way.
const EXPIRY_RETRIES: usize = 3;

type Attrs = HashMap<String, AttributeValue>;

/// The item store on one DynamoDB table.
#[derive(Clone)]
pub struct DynamoTable {
    client: Client,
    table: String,
}

impl DynamoTable {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// Creates a table with Oratio's keys, indexes and TTL (for tests and first set-up;
    /// in AWS, `template.yaml` declares it).
    pub async fn create_table(client: &Client, table: &str) -> anyhow::Result<()> {
        let attr = |name: &str| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build()
        };
        let key = |name: &str, kind: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(kind).build();
        let mut request = client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(PK, KeyType::Hash)?)
            .key_schema(key(SK, KeyType::Range)?)
            .attribute_definitions(attr(PK)?)
            .attribute_definitions(attr(SK)?);
        for index in Index::SECONDARY {
            let (pk, sk) = index.key_names();
            request =
                request.attribute_definitions(attr(pk)?).attribute_definitions(attr(sk)?).global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(index.name().expect("secondary indexes are named"))
                        .key_schema(key(pk, KeyType::Hash)?)
                        .key_schema(key(sk, KeyType::Range)?)
                        .projection(Projection::builder().projection_type(ProjectionType::All).build())
                        .build()?,
                );
        }
        request.send().await.map_err(|e| anyhow!("creating table {table}: {}", DisplayErrorContext(e)))?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder().enabled(true).attribute_name(EXPIRES_AT).build()?,
            )
            .send()
            .await
            .map_err(|e| anyhow!("enabling TTL on {table}: {}", DisplayErrorContext(e)))?;
        Ok(())
    }

    /// Removes the item at `key` if (and only if) it has expired. Returns whether one was.
    async fn clear_if_expired(&self, key: &Key) -> Result<bool, TableError> {
        let raw = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_attrs(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        let Some(attrs) = raw.item else {
            return Ok(false);
        };
        if !from_attrs(attrs)?.is_expired(now_epoch()) {
            return Ok(false);
        }
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_attrs(key)))
            .condition_expression("#e <= :now")
            .expression_attribute_names("#e", EXPIRES_AT)
            .expression_attribute_values(":now", AttributeValue::N(now_epoch().to_string()))
            .send()
            .await;
        match deleted.map_err(classify) {
            Ok(_) | Err(TableError::ConditionFailed { .. }) => Ok(true),
            Err(e) => Err(e),
        }
    }

    async fn query_page(
        &self,
        query: &Query,
        start: Option<Attrs>,
        limit: Option<usize>,
    ) -> Result<(Vec<Item>, Option<Attrs>), TableError> {
        let (pk_name, sk_name) = query.index.key_names();
        let mut expr = Expr::default();
        let mut key_condition =
            format!("{} = {}", expr.name(pk_name), expr.value(AttributeValue::S(query.partition.clone())));
        if let Some(sort) = &query.sort {
            key_condition += &format!(" AND {}", expr.sort_key(sk_name, sort));
        }
        let response = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(query.index.name().map(str::to_owned))
            .key_condition_expression(key_condition)
            .set_expression_attribute_names(Some(expr.names))
            .set_expression_attribute_values(Some(expr.values))
            .scan_index_forward(!query.descending)
            .consistent_read(query.index == Index::Primary)
            .set_exclusive_start_key(start)
            .set_limit(limit.map(|l| i32::try_from(l).unwrap_or(i32::MAX)))
            .send()
            .await
            .map_err(classify)?;
        let now = now_epoch();
        let mut items = Vec::new();
        for attrs in response.items.unwrap_or_default() {
            let item = from_attrs(attrs)?;
            if !item.is_expired(now) {
                items.push(item);
            }
        }
        Ok((items, response.last_evaluated_key.filter(|k| !k.is_empty())))
    }
}

fn key_attrs(key: &Key) -> Attrs {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(key.pk.clone())),
        (SK.to_owned(), AttributeValue::S(key.sk.clone())),
    ])
}

fn cursor_attrs(cursor: CursorKey, index: Index) -> Attrs {
    let mut attrs = key_attrs(&cursor.table);
    if let (Some((pk, sk)), Index::Gsi1 | Index::Gsi2 | Index::Gsi3 | Index::Gsi4) = (cursor.index, index) {
        let (pk_name, sk_name) = index.key_names();
        attrs.insert(pk_name.to_owned(), AttributeValue::S(pk));
        attrs.insert(sk_name.to_owned(), AttributeValue::S(sk));
    }
    attrs
}

/// JSON to DynamoDB.
pub fn to_attr(value: &Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(a) => AttributeValue::L(a.iter().map(to_attr).collect()),
        Value::Object(o) => AttributeValue::M(o.iter().map(|(k, v)| (k.clone(), to_attr(v))).collect()),
    }
}

/// DynamoDB to JSON.
pub fn from_attr(attr: AttributeValue) -> Result<Value, TableError> {
    let corrupt = |what: &str| TableError::Corrupt(format!("unexpected DynamoDB value: {what}"));
    Ok(match attr {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(b),
        AttributeValue::S(s) => Value::String(s),
        AttributeValue::N(n) => Value::Number(parse_number(&n).ok_or_else(|| corrupt(&n))?),
        AttributeValue::L(l) => Value::Array(l.into_iter().map(from_attr).collect::<Result<_, _>>()?),
        AttributeValue::M(m) => Value::Object(
            m.into_iter().map(|(k, v)| Ok((k, from_attr(v)?))).collect::<Result<Map<_, _>, TableError>>()?,
        ),
        AttributeValue::Ss(ss) => Value::Array(ss.into_iter().map(Value::String).collect()),
        other => return Err(corrupt(&format!("{other:?}"))),
    })
}

fn parse_number(n: &str) -> Option<Number> {
    if let Ok(i) = n.parse::<i64>() {
        return Some(i.into());
    }
    if let Ok(u) = n.parse::<u64>() {
        return Some(u.into());
    }
    n.parse::<f64>().ok().and_then(Number::from_f64)
}

fn to_attrs(item: &Item) -> Attrs {
    item.attributes().iter().map(|(k, v)| (k.clone(), to_attr(v))).collect()
}

fn from_attrs(attrs: Attrs) -> Result<Item, TableError> {
    let map = attrs.into_iter().map(|(k, v)| Ok((k, from_attr(v)?))).collect::<Result<Map<_, _>, TableError>>()?;
    Item::from_stored(map)
}

/// An expression under construction: placeholders for names and values.
#[derive(Default)]
struct Expr {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    fn name(&mut self, name: &str) -> String {
        if let Some((placeholder, _)) = self.names.iter().find(|(_, n)| *n == name) {
            return placeholder.clone();
        }
        let placeholder = format!("#n{}", self.names.len());
        self.names.insert(placeholder.clone(), name.to_owned());
        placeholder
    }

    fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    fn now(&mut self) -> String {
        let now = now_epoch().to_string();
        if let Some((placeholder, _)) =
            self.values.iter().find(|(p, v)| p.starts_with(":now") && **v == AttributeValue::N(now.clone()))
        {
            return placeholder.clone();
        }
        let placeholder = format!(":now{}", self.values.len());
        self.values.insert(placeholder.clone(), AttributeValue::N(now));
        placeholder
    }

    /// The item is absent or live.
    fn live(&mut self) -> String {
        let (e, now) = (self.name(EXPIRES_AT), self.now());
        format!("(attribute_not_exists({e}) OR {e} > {now})")
    }

    fn expired(&mut self) -> String {
        let (e, now) = (self.name(EXPIRES_AT), self.now());
        format!("{e} <= {now}")
    }

    /// A condition judged on the live item: an expired item counts as absent.
    fn condition(&mut self, condition: &Condition) -> String {
        let true_when_absent = |expr: &mut Self, atom: String| format!("({atom} OR {})", expr.expired());
        let false_when_absent = |expr: &mut Self, atom: String| format!("({atom} AND {})", expr.live());
        match condition {
            Condition::Exists => {
                let pk = self.name(PK);
                false_when_absent(self, format!("attribute_exists({pk})"))
            }
            Condition::NotExists => {
                let pk = self.name(PK);
                true_when_absent(self, format!("attribute_not_exists({pk})"))
            }
            Condition::AttributeExists(a) => {
                let a = self.name(a);
                false_when_absent(self, format!("attribute_exists({a})"))
            }
            Condition::AttributeNotExists(a) => {
                let a = self.name(a);
                true_when_absent(self, format!("attribute_not_exists({a})"))
            }
            Condition::Equals(a, v) => {
                let (a, v) = (self.name(a), self.value(to_attr(v)));
                false_when_absent(self, format!("{a} = {v}"))
            }
            Condition::NotEquals(a, v) => {
                let (a, v) = (self.name(a), self.value(to_attr(v)));
                true_when_absent(self, format!("(attribute_not_exists({a}) OR {a} <> {v})"))
            }
            Condition::LessThan(a, v) => {
                let atom = self.ordered(a, "<", v);
                false_when_absent(self, atom)
            }
            Condition::GreaterThan(a, v) => {
                let atom = self.ordered(a, ">", v);
                false_when_absent(self, atom)
            }
            Condition::And(all) => {
                let parts: Vec<_> = all.iter().map(|c| self.condition(c)).collect();
                format!("({})", parts.join(" AND "))
            }
            Condition::Or(any) => {
                let parts: Vec<_> = any.iter().map(|c| self.condition(c)).collect();
                format!("({})", parts.join(" OR "))
            }
        }
    }

    /// `a < v` or `a > v`, false unless `a` has `v`'s type (stated, not left to the
    /// engine: emulators disagree on comparing mixed types).
    fn ordered(&mut self, name: &str, op: &str, value: &Value) -> String {
        let type_code = if value.is_number() { "N" } else { "S" };
        let a = self.name(name);
        let t = self.value(AttributeValue::S(type_code.into()));
        let v = self.value(to_attr(value));
        format!("attribute_type({a}, {t}) AND {a} {op} {v}")
    }

    fn sort_key(&mut self, name: &str, sort: &SortKey) -> String {
        let n = self.name(name);
        let mut v = |s: &String| self.value(AttributeValue::S(s.clone()));
        match sort {
            SortKey::Equals(s) => format!("{n} = {}", v(s)),
            SortKey::BeginsWith(s) => format!("begins_with({n}, {})", v(s)),
            SortKey::Between(lo, hi) => {
                let lo = v(lo);
                format!("{n} BETWEEN {lo} AND {}", v(hi))
            }
            SortKey::LessThan(s) => format!("{n} < {}", v(s)),
            SortKey::LessOrEqual(s) => format!("{n} <= {}", v(s)),
            SortKey::GreaterThan(s) => format!("{n} > {}", v(s)),
            SortKey::GreaterOrEqual(s) => format!("{n} >= {}", v(s)),
        }
    }

    fn update(&mut self, update: &Update) -> String {
        let mut clauses = Vec::new();
        if !update.set.is_empty() {
            let sets: Vec<_> =
                update.set.iter().map(|(a, v)| format!("{} = {}", self.name(a), self.value(to_attr(v)))).collect();
            clauses.push(format!("SET {}", sets.join(", ")));
        }
        if !update.remove.is_empty() {
            let removes: Vec<_> = update.remove.iter().map(|a| self.name(a)).collect();
            clauses.push(format!("REMOVE {}", removes.join(", ")));
        }
        if !update.add.is_empty() {
            let adds: Vec<_> = update
                .add
                .iter()
                .map(|(a, by)| format!("{} {}", self.name(a), self.value(AttributeValue::N(by.to_string()))))
                .collect();
            clauses.push(format!("ADD {}", adds.join(", ")));
        }
        clauses.join(" ")
    }

    /// An update's condition: the caller's, and the item absent or live (so that an
    /// expired item is never updated in place).
    fn update_condition(&mut self, condition: Option<&Condition>) -> String {
        let pk = self.name(PK);
        let guard = format!("(attribute_not_exists({pk}) OR {})", self.live());
        match condition {
            // `condition` is parenthesised already; DynamoDB refuses redundant parentheses.
            Some(c) => format!("{} AND {guard}", self.condition(c)),
            None => guard,
        }
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<Attrs> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

/// Maps an SDK failure to the port's error, keeping the SDK's text out of it.
fn classify<E>(err: SdkError<E, HttpResponse>) -> TableError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = err.code().map(str::to_owned);
    let message = err.message().map(str::to_owned).unwrap_or_default();
    let transient =
        matches!(err, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_));
    let source = anyhow!("{}", DisplayErrorContext(err));
    match code.as_deref() {
        Some("ConditionalCheckFailedException") => TableError::ConditionFailed { write: None },
        Some("TransactionConflictException") => TableError::Conflict,
        Some(
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "TransactionInProgressException",
        ) => TableError::Unavailable(source),
        Some("ValidationException") => TableError::Invalid(message),
        _ if transient => TableError::Unavailable(source),
        _ => TableError::Backend(source),
    }
}

#[async_trait]
impl Table for DynamoTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        validate_key(key)?;
        let response = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_attrs(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        let item = response.item.map(from_attrs).transpose()?;
        Ok(item.filter(|i| !i.is_expired(now_epoch())))
    }

    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError> {
        Write::Put { item: item.clone(), condition: condition.clone() }.validate()?;
        let mut expr = Expr::default();
        let condition = condition.map(|c| expr.condition(&c));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_attrs(&item)))
            .set_condition_expression(condition)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn update(&self, key: &Key, update: Update, condition: Option<Condition>) -> Result<Item, TableError> {
        let write = Write::Update { key: key.clone(), update, condition };
        write.validate()?;
        let Write::Update { update, condition, .. } = &write else { unreachable!("built above") };
        for _ in 0..EXPIRY_RETRIES {
            let mut expr = Expr::default();
            let update_expression = expr.update(update);
            let condition_expression = expr.update_condition(condition.as_ref());
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key_attrs(key)))
                .update_expression(update_expression)
                .condition_expression(condition_expression)
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
                .send()
                .await
                .map_err(classify);
            match result {
                Ok(out) => return from_attrs(out.attributes.unwrap_or_default()),
                Err(TableError::ConditionFailed { .. }) if self.clear_if_expired(key).await? => {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        Err(TableError::Conflict)
    }

    async fn delete(&self, key: &Key, condition: Option<Condition>) -> Result<(), TableError> {
        validate_key(key)?;
        let mut expr = Expr::default();
        let condition = condition.map(|c| expr.condition(&c));
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_attrs(key)))
            .set_condition_expression(condition)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn query(&self, query: Query) -> Result<Page, TableError> {
        let after = query.validate()?;
        let mut start = after.map(|c| cursor_attrs(c, query.index));
        let mut items = Vec::new();
        loop {
            // Ask for one more than needed: it tells whether another page follows.
            let wanted = query.limit.map(|l| l + 1 - items.len().min(l));
            let (page, last) = self.query_page(&query, start, wanted).await?;
            items.extend(page);
            let full = query.limit.is_some_and(|l| items.len() > l);
            match last {
                Some(last) if !full => start = Some(last),
                _ => break,
            }
        }
        let next = match query.limit {
            Some(limit) if items.len() > limit => {
                items.truncate(limit);
                items.last().map(|last| Cursor::encode(&CursorKey::of(last, query.index)))
            }
            _ => None,
        };
        Ok(Page { items, next })
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), TableError> {
        validate_transaction(&writes)?;
        for _ in 0..EXPIRY_RETRIES {
            let mut items = Vec::with_capacity(writes.len());
            for write in &writes {
                let mut expr = Expr::default();
                let item = match write {
                    Write::Put { item, condition } => {
                        let condition = condition.as_ref().map(|c| expr.condition(c));
                        TransactWriteItem::builder().put(
                            Put::builder()
                                .table_name(&self.table)
                                .set_item(Some(to_attrs(item)))
                                .set_condition_expression(condition)
                                .set_expression_attribute_names(expr.names())
                                .set_expression_attribute_values(expr.values())
                                .build()
                                .map_err(|e| TableError::Backend(e.into()))?,
                        )
                    }
                    Write::Update { key, update, condition } => {
                        let update_expression = expr.update(update);
                        let condition = expr.update_condition(condition.as_ref());
                        TransactWriteItem::builder().update(
                            DynamoUpdate::builder()
                                .table_name(&self.table)
                                .set_key(Some(key_attrs(key)))
                                .update_expression(update_expression)
                                .condition_expression(condition)
                                .set_expression_attribute_names(expr.names())
                                .set_expression_attribute_values(expr.values())
                                .build()
                                .map_err(|e| TableError::Backend(e.into()))?,
                        )
                    }
                    Write::Delete { key, condition } => {
                        let condition = condition.as_ref().map(|c| expr.condition(c));
                        TransactWriteItem::builder().delete(
                            Delete::builder()
                                .table_name(&self.table)
                                .set_key(Some(key_attrs(key)))
                                .set_condition_expression(condition)
                                .set_expression_attribute_names(expr.names())
                                .set_expression_attribute_values(expr.values())
                                .build()
                                .map_err(|e| TableError::Backend(e.into()))?,
                        )
                    }
                    Write::Check { key, condition } => {
                        let condition = expr.condition(condition);
                        TransactWriteItem::builder().condition_check(
                            ConditionCheck::builder()
                                .table_name(&self.table)
                                .set_key(Some(key_attrs(key)))
                                .condition_expression(condition)
                                .set_expression_attribute_names(expr.names())
                                .set_expression_attribute_values(expr.values())
                                .build()
                                .map_err(|e| TableError::Backend(e.into()))?,
                        )
                    }
                };
                items.push(item.build());
            }
            let result = self.client.transact_write_items().set_transact_items(Some(items)).send().await;
            let err = match result {
                Ok(_) => return Ok(()),
                Err(err) => err,
            };
            let reasons = err
                .as_service_error()
                .and_then(|e| match e {
                    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => {
                        c.cancellation_reasons.clone()
                    }
                    _ => None,
                })
                .unwrap_or_default();
            let failed = reasons.iter().position(|r| r.code() == Some("ConditionalCheckFailed"));
            let conflict = reasons.iter().any(|r| r.code() == Some("TransactionConflict"));
            if conflict {
                return Err(TableError::Conflict);
            }
            let Some(failed) = failed else {
                return Err(match classify(err) {
                    TableError::Backend(e) if e.to_string().contains("TransactionCanceled") => {
                        TableError::ConditionFailed { write: None }
                    }
                    other => other,
                });
            };
            // An update may have failed only because an expired item stood in its way.
            let mut cleared = false;
            for write in &writes {
                if matches!(write, Write::Update { .. }) {
                    cleared |= self.clear_if_expired(&write.key()).await?;
                }
            }
            if !cleared {
                return Err(TableError::ConditionFailed { write: Some(failed) });
            }
        }
        Err(TableError::Conflict)
    }
}

#[async_trait]
impl HealthCheck for DynamoTable {
    fn name(&self) -> &'static str {
        "table"
    }

    fn backend(&self) -> &'static str {
        "dynamodb"
    }

    async fn probe(&self) -> Result<(), String> {
        self.get(&Key::new("HEALTH", "PROBE")).await.map(drop).map_err(|e| e.to_string())
    }
}
