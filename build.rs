//! Build script: copies shaders/*.wgsl into OUT_DIR without comments and indentation (they are
//! compiled into the binary; the wasm module is the page's download). Lines are kept, so a
//! compiler message's line number still points into the file under shaders/.
use std::{env, fs, path::Path};

fn main() {
    println!("cargo:rerun-if-changed=shaders");
    let out = env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    for entry in fs::read_dir("shaders").expect("shaders/ is beside Cargo.toml") {
        let path = entry.expect("a readable shaders/ entry").path();
        if path.extension().is_some_and(|e| e == "wgsl") {
            let text = fs::read_to_string(&path).expect("a shader is UTF-8 text");
            fs::write(Path::new(&out).join(path.file_name().unwrap()), strip(&text)).expect("OUT_DIR is writable");
        }
    }
}

/// Drops `//` comments (WGSL has no string literals for them to hide in), indentation and
/// runs of spaces; keeps every line break.
fn strip(wgsl: &str) -> String {
    let mut out = String::with_capacity(wgsl.len());
    for line in wgsl.lines() {
        let code = line.split("//").next().unwrap_or("");
        out.push_str(&code.split_whitespace().collect::<Vec<_>>().join(" "));
        out.push('\n');
    }
    out
}
