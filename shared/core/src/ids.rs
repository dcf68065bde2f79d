//! Identifiers that are parsed once at the edge and trusted afterwards.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct InvalidId {
    pub kind: &'static str,
    pub reason: &'static str,
}

/// `as_str`, `TryFrom<String>` (through `$parse`), `From<_> for String` and `Display` for
/// a validated string newtype.
macro_rules! string_newtype {
    ($name:ident, $error:ty, $parse:expr) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = $error;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                $parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
pub(crate) use string_newtype;

macro_rules! ulid_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// A new, time-ordered identifier.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, ulid::Ulid::new().to_string().to_lowercase()))
            }
        }

        string_newtype!($name, InvalidId, <$name as FromStr>::from_str);

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let rest = s.strip_prefix($prefix).ok_or(InvalidId {
                    kind: $kind,
                    reason: concat!("must start with `", $prefix, "`"),
                })?;
                if rest.len() != 26 || ulid::Ulid::from_string(rest).is_err() {
                    return Err(InvalidId { kind: $kind, reason: "malformed" });
                }
                Ok(Self(s.to_ascii_lowercase()))
            }
        }

    };
}

ulid_id!(
    /// An organisation: the unit of isolation.
    TenantId, "tenant id", "ten_"
);
ulid_id!(
    /// One agent of a tenant.
    AgentId, "agent id", "agt_"
);
ulid_id!(
    /// One API key (its id, not its secret).
    KeyId, "key id", "key_"
);
ulid_id!(
    /// One conversation of a customer with an agent.
    SessionId, "session id", "ses_"
);
ulid_id!(
    /// One handoff notification.
    NotificationId, "notification id", "ntf_"
);
ulid_id!(
    /// One tool a tenant registered for its agents.
    ToolId, "tool id", "tool_"
);
ulid_id!(
    /// One call of a tenant tool.
    ExecutionId, "execution id", "exe_"
);

/// One WebSocket connection, named by API Gateway (or by the embedded emulation, which
/// mints ids of the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConnectionId(String);

impl FromStr for ConnectionId {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "=+/_-".contains(c);
        if s.is_empty() || s.len() > 128 || !s.chars().all(allowed) {
            return Err(InvalidId { kind: "connection id", reason: "malformed" });
        }
        Ok(Self(s.to_owned()))
    }
}

string_newtype!(ConnectionId, InvalidId, <ConnectionId as FromStr>::from_str);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back() {
        let id = TenantId::generate();
        assert_eq!(id.as_str().parse::<TenantId>().unwrap(), id);
    }

    #[test]
    fn ids_of_another_kind_are_refused() {
        let agent = AgentId::generate();
        assert!(agent.as_str().parse::<TenantId>().is_err());
        assert!("ten_../../etc".parse::<TenantId>().is_err());
    }
}
