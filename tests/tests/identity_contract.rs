//! The `Identity` contract on every adapter.

mod embedded {
    oratio_tests::identity_contract!(oratio_tests::fixtures::local_identity);
}

mod cognito {
    oratio_tests::identity_contract!(oratio_tests::fixtures::cognito_identity);
}
