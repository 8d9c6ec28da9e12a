// Shared by the build scripts of every package whose binaries link libtorch
// (included with `include!`, so there is one copy of this logic).
//
// torch-sys (links = "tch") passes the libtorch lib folder to packages that depend on it
// directly as DEP_TCH_LIBTORCH_LIB. From it we add, for this package's
// tests, examples, benches and binaries:
// * an rpath, so they load libtorch with no LD_LIBRARY_PATH;
// * libtorch_cuda linked with --no-as-needed: no Rust code references a symbol
//   of libtorch_cuda directly, so the linker drops it by default and CUDA then
//   reports unavailable (tch-rs issue 980).
fn link_libtorch() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB unset: no rpath to libtorch added");
        return;
    };
    // The real folder, not the `.cache/libtorch` link inside the clone: the
    // binaries keep working from anywhere.
    let lib = std::fs::canonicalize(&lib).unwrap_or_else(|_| std::path::PathBuf::from(&lib));
    let lib = lib.as_path();
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
