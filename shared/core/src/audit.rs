//! Audit lines: who did what to which tenant, as structured log events on the `audit`
//! target (sign-ins, key creation and revocation, membership and role changes).

/// Logs one audit event.
#[macro_export]
macro_rules! audit {
    ($action:expr, tenant = $tenant:expr, actor = $actor:expr $(, $field:ident = $value:expr)* $(,)?) => {
        tracing::info!(
            target: "audit",
            audit = true,
            action = $action,
            tenant_id = %$tenant,
            actor = %$actor,
            $($field = %$value,)*
            "audit"
        )
    };
}
