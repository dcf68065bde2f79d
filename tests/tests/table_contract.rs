//! The `Table` contract on every adapter.

mod sqlite {
    oratio_tests::table_contract!(oratio_tests::fixtures::sqlite_table);
}

mod dynamodb {
    oratio_tests::table_contract!(oratio_tests::fixtures::dynamodb_table);
}
