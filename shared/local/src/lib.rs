//! Embedded adapters: the ports of `oratio-core` on one machine, with no cloud account.

pub mod blob;
pub mod push;
pub mod sqlite;

pub use blob::DirBlobStore;
pub use push::ConnectionRegistry;
pub use sqlite::SqliteTable;
