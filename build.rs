//! Adds the libtorch rpath and the libtorch_cuda link to this package's binaries.
include!("build-support/torch_link.rs");

fn main() {
    // Without the `torch` feature nothing links libtorch.
    if std::env::var_os("CARGO_FEATURE_TORCH").is_some() {
        link_libtorch();
    }
}
