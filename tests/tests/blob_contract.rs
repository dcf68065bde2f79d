//! The `BlobStore` contract on every adapter.

mod filesystem {
    oratio_tests::blob_contract!(oratio_tests::fixtures::dir_blobs);
}

mod s3 {
    oratio_tests::blob_contract!(oratio_tests::fixtures::s3_blobs);
}
