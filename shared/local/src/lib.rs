//! Embedded adapters: the ports of `oratio-core` on one machine, with no cloud account.

pub mod asl;
pub mod blob;
pub mod checker;
pub mod documents;
pub mod embeddings;
pub mod engine;
pub mod files;
pub mod identity;
pub mod knowledge;
pub mod llm;
pub mod outbox;
pub mod push;
pub mod python_engine;
pub mod ratelimit;
pub mod runtime;
pub mod secrets;
pub mod speech;
pub mod sqlite;
pub mod voice_workers;

pub use blob::DirBlobStore;
pub use identity::LocalIdentity;
pub use outbox::Outbox;
pub use push::ConnectionRegistry;
pub use ratelimit::InMemoryRateLimiter;
pub use sqlite::SqliteTable;
