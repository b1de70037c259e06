//! `squeeze`: the native command-line runner (see src/cli.rs). Not built for the browser.

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    squeeze::cli::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}
