//! Port contract suites. Each suite is a list of async cases taking the port under test;
//! a macro per suite declares one test per case for a given adapter factory.

pub mod blob;
pub mod identity;
pub mod mail;
pub mod push;
pub mod ratelimit;
pub mod table;

/// Declares `#[tokio::test]`s running the cases of one suite against one adapter.
#[macro_export]
macro_rules! contract_cases {
    ($factory:path, $suite:ident, [$($case:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::init_logs();
                let subject = $factory().await;
                $crate::contract::$suite::$case(subject.port.clone()).await;
            }
        )*
    };
}
