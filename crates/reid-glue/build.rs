//! Adds the libtorch rpath and the libtorch_cuda link to this package's binaries.
include!("../../build-support/torch_link.rs");

fn main() {
    link_libtorch();
}
