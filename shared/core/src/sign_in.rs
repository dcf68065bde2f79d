//! Signing in, with repeated failures throttled per email address (whichever identity
//! provider is behind), and every successful sign-in audited with its tenant.

use crate::audit;
use crate::identity::{Email, Identity, IdentityError, Password, TokenVerifier, Tokens};
use crate::table::{Condition, Item, Key, Table, Update};
use crate::tenancy;
use crate::time::now_epoch;

/// Failed attempts allowed per email within a window before sign-in is refused.
pub const MAX_FAILURES: i64 = 5;
pub const WINDOW_SECS: i64 = 15 * 60;

fn throttle_key(email: &Email) -> Key {
    Key::new(format!("THROTTLE#SIGNIN#{email}"), "THROTTLE")
}

fn unavailable(e: crate::table::TableError) -> IdentityError {
    IdentityError::Unavailable(e.into())
}

pub async fn sign_in(
    table: &dyn Table,
    identity: &dyn Identity,
    verifier: &dyn TokenVerifier,
    email: &Email,
    password: &Password,
) -> Result<Tokens, IdentityError> {
    let key = throttle_key(email);
    let failures = table.get(&key).await.map_err(unavailable)?;
    if let Some(record) = &failures
        && record.i64("failures").unwrap_or(0) >= MAX_FAILURES
    {
        let retry = record.expires_at().map(|at| (at - now_epoch()).max(1) as u64);
        return Err(IdentityError::Throttled { retry_after_secs: retry });
    }
    match identity.sign_in(email, password).await {
        Ok(tokens) => {
            if failures.is_some() {
                table.delete(&key, None).await.map_err(unavailable)?;
            }
            let claims = verifier
                .verify_access(&tokens.access_token)
                .await
                .map_err(|e| IdentityError::Backend(anyhow::anyhow!("a fresh access token did not verify: {e}")))?;
            let tenant = tenancy::membership(table, &claims.user_id)
                .await
                .map_err(|e| IdentityError::Backend(e.into()))?
                .map(|m| m.tenant_id.to_string())
                .unwrap_or_else(|| "-".into());
            audit!("sign_in", tenant = tenant, actor = claims.user_id);
            Ok(tokens)
        }
        Err(e @ (IdentityError::WrongPassword | IdentityError::UnknownUser)) => {
            let counted = match failures {
                None => {
                    let first = Item::new(key.clone()).with("failures", 1).expiring_at(now_epoch() + WINDOW_SECS);
                    table.put(first, Some(Condition::NotExists)).await
                }
                Some(_) => {
                    table.update(&key, Update::new().add("failures", 1), Some(Condition::Exists)).await.map(drop)
                }
            };
            if let Err(count_failed) = counted {
                tracing::warn!(cause = %format!("{count_failed:#}"), "counting a failed sign-in failed");
            }
            tracing::info!(target: "audit", audit = true, action = "sign_in_failed", email = %email, "audit");
            Err(e)
        }
        Err(e) => Err(e),
    }
}
