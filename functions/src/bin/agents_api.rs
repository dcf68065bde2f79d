//! Lambda: the `agents` REST API area (agents and their API keys).

use std::process::ExitCode;

use oratio_functions::{agents_api, aws, keys_api};
use oratio_local::documents;

fn main() -> ExitCode {
    // Uploaded documents are read by a child of this binary, bounded and apart.
    if std::env::args().nth(1).as_deref() == Some(documents::CHILD_COMMAND) {
        return documents::serve_child();
    }
    let served = tokio::runtime::Runtime::new()
        .map_err(lambda_http::Error::from)
        .and_then(|runtime| runtime.block_on(aws::serve_api(agents_api::routes().merge(keys_api::routes()))));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agents_api: {e}");
            ExitCode::FAILURE
        }
    }
}
