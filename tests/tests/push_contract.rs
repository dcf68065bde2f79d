//! The `Push` contract on every adapter.

mod in_process {
    oratio_tests::push_contract!(oratio_tests::fixtures::local_push);
}

mod api_gateway {
    oratio_tests::push_contract!(oratio_tests::fixtures::api_gateway_push);
}
