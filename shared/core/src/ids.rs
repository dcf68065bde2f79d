//! Identifiers that are parsed once at the edge and trusted afterwards.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct InvalidId {
    pub kind: &'static str,
    pub reason: &'static str,
}

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

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

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

        impl TryFrom<String> for $name {
            type Error = InvalidId;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
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

/// One WebSocket connection, named by API Gateway (or by the embedded emulation, which
/// mints ids of the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConnectionId(String);

impl ConnectionId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

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

impl TryFrom<String> for ConnectionId {
    type Error = InvalidId;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ConnectionId> for String {
    fn from(id: ConnectionId) -> String {
        id.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

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
