//! The `RateLimiter` contract on every adapter.

mod in_memory {
    oratio_tests::ratelimit_contract!(oratio_tests::fixtures::in_memory_rate_limiter);
}

mod sqlite_table {
    oratio_tests::ratelimit_contract!(oratio_tests::fixtures::sqlite_rate_limiter);
}

mod dynamodb_table {
    oratio_tests::ratelimit_contract!(oratio_tests::fixtures::dynamodb_rate_limiter);
}
