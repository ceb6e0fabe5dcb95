//! Compiles the C++ shim against Debian's OpenCascade 7.6 (`scripts/setup.sh` installs it) and
//! links OpenCascade's libraries dynamically. `OCCT_INCLUDE_DIR` and `OCCT_LIB_DIR` point
//! elsewhere for an OpenCascade of your own.

use std::path::PathBuf;

/// The OpenCascade libraries the shim uses, each after those that need it.
const LIBRARIES: &[&str] = &[
    "TKXDESTEP",
    "TKSTEP",
    "TKSTEPAttr",
    "TKSTEP209",
    "TKSTEPBase",
    "TKXSBase",
    "TKRWMesh",
    "TKXCAF",
    "TKVCAF",
    "TKCAF",
    "TKLCAF",
    "TKCDF",
    "TKV3d",
    "TKService",
    "TKMesh",
    "TKHLR",
    "TKShHealing",
    "TKTopAlgo",
    "TKGeomAlgo",
    "TKBRep",
    "TKGeomBase",
    "TKG3d",
    "TKG2d",
    "TKMath",
    "TKernel",
];

fn main() {
    println!("cargo::rerun-if-changed=src/shim.cpp");
    println!("cargo::rerun-if-env-changed=OCCT_INCLUDE_DIR");
    println!("cargo::rerun-if-env-changed=OCCT_LIB_DIR");
    let include = std::env::var_os("OCCT_INCLUDE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/include/opencascade"));
    if !include.join("STEPCAFControl_Reader.hxx").exists() {
        panic!(
            "OpenCascade's headers are not in {}: run scripts/setup.sh (it installs Debian's \
             libocct-data-exchange-dev and friends) or set OCCT_INCLUDE_DIR",
            include.display()
        );
    }
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("src/shim.cpp")
        .include(&include)
        // OpenCascade's headers are not warning-clean; ours is judged by clippy's side.
        .warnings(false)
        .compile("parallax_step_shim");
    if let Some(dir) = std::env::var_os("OCCT_LIB_DIR") {
        println!(
            "cargo::rustc-link-search=native={}",
            PathBuf::from(dir).display()
        );
    }
    for library in LIBRARIES {
        println!("cargo::rustc-link-lib=dylib={library}");
    }
}
