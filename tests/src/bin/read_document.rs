//! The document reader's child for the platforms the tests start in process (where the
//! running program is a test binary, not `oratio`): `oratio read-document`, exactly.

fn main() -> std::process::ExitCode {
    oratio_local::documents::serve_child()
}
